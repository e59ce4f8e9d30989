package main

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/internal/openssl"
)

// Signers of RS256 keys (--signer; docs/signer.md).
const (
	signerAuto    = "auto"
	signerGo      = "go"
	signerOpenSSL = "openssl"
)

// signerChoice is the RS256 signer serve runs with, as --signer decided it.
type signerChoice struct {
	name    string // signerGo or signerOpenSSL
	library string // OpenSSL's version, with signerOpenSSL
	why     string // with auto falling back to go: why OpenSSL could not load
}

// chooseSigner resolves --signer: openssl must load, auto takes OpenSSL
// when it loads and crypto/rsa otherwise, go never tries.
func chooseSigner(flag string) (signerChoice, error) {
	switch flag {
	case signerGo:
		return signerChoice{name: signerGo}, nil
	case signerOpenSSL, signerAuto:
		err := openssl.Load()
		if err == nil {
			return signerChoice{name: signerOpenSSL, library: openssl.Version()}, nil
		}
		if flag == signerOpenSSL {
			return signerChoice{}, fmt.Errorf("--signer openssl: %w", err)
		}
		return signerChoice{name: signerGo, why: err.Error()}, nil
	}
	return signerChoice{}, fmt.Errorf("--signer must be auto, go or openssl, not %q", flag)
}

// rsaSigner is keys.Policy.RSASigner for the choice: nil (crypto/rsa) or
// OpenSSL's, which the key manager closes when a key stops signing.
func (s signerChoice) rsaSigner() func(*rsa.PrivateKey) (crypto.Signer, error) {
	if s.name != signerOpenSSL {
		return nil
	}
	return func(priv *rsa.PrivateKey) (crypto.Signer, error) { return openssl.NewRSAKey(priv) }
}

// log says which signer serve runs with, and why not OpenSSL under auto.
func (s signerChoice) log(log *slog.Logger, algorithm string) {
	switch {
	case s.name == signerOpenSSL:
		log.Info("RS256 signer: OpenSSL", "library", s.library, "key_algorithm", algorithm)
	case s.why != "":
		log.Info("RS256 signer: crypto/rsa (--signer auto: OpenSSL not available)", "reason", s.why, "key_algorithm", algorithm)
	default:
		log.Info("RS256 signer: crypto/rsa (--signer go)", "key_algorithm", algorithm)
	}
}

// register shows the choice in /metrics as keyward_signer_info.
func (s signerChoice) register(reg prometheus.Registerer) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "keyward_signer_info",
		Help: "The RS256 signer this server runs with (--signer): go (crypto/rsa) or openssl, with the OpenSSL version; always 1.",
	}, []string{"signer", "library"})
	g.WithLabelValues(s.name, s.library).Set(1)
	return reg.Register(g)
}
