package keys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// es256Half is the size of R and of S in an ES256 signature (RFC 7518 §3.4).
const es256Half = 32

// signingKey is the loaded active key: its signer and its protected headers,
// one per typ. It is shared by every snapshot that has it as active key;
// refs counts the snapshot's hold (1, until release) plus each Sign using
// it, and the signer is closed, if it is an io.Closer, when refs reaches 0.
type signingKey struct {
	kid     string
	alg     string
	signer  crypto.Signer
	sigLen  int      // bytes in a signature
	headers sync.Map // typ -> string: base64url(protected header) + "."

	refs     atomic.Int64
	released atomic.Bool // the snapshots' hold has been given up
}

// newSigningKey wraps priv for signing with alg; mk, when set, makes the
// signer of an RSA key (Policy.RSASigner).
func newSigningKey(kid, alg string, priv crypto.Signer, mk func(*rsa.PrivateKey) (crypto.Signer, error)) (*signingKey, error) {
	signer := priv
	if rk, ok := priv.(*rsa.PrivateKey); ok && mk != nil {
		s, err := mk(rk)
		if err != nil {
			return nil, fmt.Errorf("key %s: make RSA signer: %w", kid, err)
		}
		signer = s
	}
	k := &signingKey{kid: kid, alg: alg, signer: signer}
	switch alg {
	case AlgES256:
		k.sigLen = 2 * es256Half
	case AlgEdDSA:
		k.sigLen = ed25519.SignatureSize
	default:
		if p, ok := signer.Public().(*rsa.PublicKey); ok {
			k.sigLen = p.Size()
		}
	}
	k.refs.Store(1)
	return k, nil
}

// acquire takes a reference for one Sign. It fails once the key has been
// released and its last Sign has finished: the caller then retries on the
// current snapshot, which no longer has this key as active.
func (k *signingKey) acquire() bool {
	for {
		n := k.refs.Load()
		if n <= 0 {
			return false
		}
		if k.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// done gives one reference back and closes the signer after the last.
func (k *signingKey) done() {
	if k.refs.Add(-1) != 0 {
		return
	}
	if c, ok := k.signer.(io.Closer); ok {
		_ = c.Close() // no caller to report to; the binding frees its key either way
	}
}

// release gives up the snapshots' hold: called once a snapshot without k as
// active key is in place. Calling it again does nothing.
func (k *signingKey) release() {
	if k.released.CompareAndSwap(false, true) {
		k.done()
	}
}

// header returns the encoded protected header for typ followed by ".", made
// once per typ: {"alg":...,"kid":...,"typ":...} (RFC 7515 §4.1).
func (k *signingKey) header(typ string) (string, error) {
	if h, ok := k.headers.Load(typ); ok {
		return h.(string), nil
	}
	if typ == "" {
		return "", errors.New("sign: typ is required")
	}
	raw, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{k.alg, k.kid, typ})
	if err != nil {
		return "", fmt.Errorf("sign: header: %w", err)
	}
	h := base64.RawURLEncoding.EncodeToString(raw) + "."
	got, _ := k.headers.LoadOrStore(typ, h)
	return got.(string), nil
}

// sign builds the JWS compact serialization (RFC 7515 §7.1) of payload:
// header "." payload "." signature, all base64url, in one buffer. The
// signing input is hashed once; RS256 is RSASSA-PKCS1-v1_5 with SHA-256,
// ES256 the raw R || S (RFC 7518 §3.4), EdDSA Ed25519 over the input itself
// (RFC 8037 §3.1).
func (k *signingKey) sign(typ string, payload []byte) (string, error) {
	hdr, err := k.header(typ)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	n := len(hdr) + enc.EncodedLen(len(payload)) + 1 + enc.EncodedLen(k.sigLen)
	buf := make([]byte, 0, n)
	buf = append(buf, hdr...)
	buf = enc.AppendEncode(buf, payload)
	input := buf

	var sig []byte
	switch k.alg {
	case AlgEdDSA:
		sig, err = k.signer.Sign(rand.Reader, input, crypto.Hash(0))
	default:
		digest := sha256.Sum256(input)
		sig, err = k.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err == nil && k.alg == AlgES256 {
			sig, err = rawECDSA(sig)
		}
	}
	if err != nil {
		return "", fmt.Errorf("sign with key %s: %w", k.kid, err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	// buf is never written again, so the string may share its memory, as
	// strings.Builder does: one copy fewer on the hot path.
	return unsafe.String(unsafe.SliceData(buf), len(buf)), nil
}

// rawECDSA turns an ASN.1 ECDSA-Sig-Value (what ecdsa.SignASN1 and a
// crypto.Signer return) into the JWS form: R and S as fixed 32-byte
// big-endian halves (RFC 7518 §3.4).
func rawECDSA(der []byte) ([]byte, error) {
	var seq, r, s cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) || !seq.Empty() {
		return nil, errors.New("malformed ECDSA signature")
	}
	out := make([]byte, 2*es256Half)
	for i, v := range [][]byte{r, s} {
		for len(v) > 0 && v[0] == 0 {
			v = v[1:] // DER's sign byte
		}
		if len(v) == 0 || len(v) > es256Half {
			return nil, errors.New("malformed ECDSA signature")
		}
		copy(out[(i+1)*es256Half-len(v):], v)
	}
	return out, nil
}
