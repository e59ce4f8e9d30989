//go:build cgo && linux

package openssl

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

// No OpenSSL header is included: these are the few prototypes of
// libcrypto.so.3 that Keyward calls, declared here as function pointers and
// filled by dlsym at run time (see doc.go). They follow OpenSSL 3.0's
// headers; in 3.0 EVP_PKEY_CTX_set_rsa_padding and
// EVP_PKEY_CTX_set_signature_md are functions, no longer macros.
typedef struct kw_evp_pkey EVP_PKEY;
typedef struct kw_evp_pkey_ctx EVP_PKEY_CTX;
typedef struct kw_evp_md EVP_MD;

#define KW_OPENSSL_VERSION 0      // OpenSSL_version(OPENSSL_VERSION)
#define KW_EVP_PKEY_RSA 6         // NID_rsaEncryption
#define KW_RSA_PKCS1_PADDING 1
#define KW_MIN_VERSION 0x30000000UL // 3.0.0 in OpenSSL_version_num's 0xMNN00PP0 form

struct kw_fns {
	unsigned long (*OpenSSL_version_num)(void);
	const char *(*OpenSSL_version)(int);
	EVP_PKEY *(*d2i_PrivateKey)(int, EVP_PKEY **, const unsigned char **, long);
	void (*EVP_PKEY_free)(EVP_PKEY *);
	int (*EVP_PKEY_get_size)(const EVP_PKEY *);
	EVP_PKEY_CTX *(*EVP_PKEY_CTX_new)(EVP_PKEY *, void *);
	void (*EVP_PKEY_CTX_free)(EVP_PKEY_CTX *);
	int (*EVP_PKEY_sign_init)(EVP_PKEY_CTX *);
	int (*EVP_PKEY_CTX_set_rsa_padding)(EVP_PKEY_CTX *, int);
	int (*EVP_PKEY_CTX_set_signature_md)(EVP_PKEY_CTX *, const EVP_MD *);
	const EVP_MD *(*EVP_sha256)(void);
	int (*EVP_PKEY_sign)(EVP_PKEY_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);
	unsigned long (*ERR_get_error)(void);
	void (*ERR_error_string_n)(unsigned long, char *, size_t);
	void (*ERR_clear_error)(void);
};

// kw holds the functions once kw_load has resolved them all.
static struct kw_fns kw;

// kw_load opens lib, resolves every symbol and checks that the library is
// OpenSSL 3.0 or later; only then does it set kw. It returns 0 on success, else -1 with a message in buf
// (dlerror's, which lives in a per-thread buffer, is copied before this call
// returns).
static int kw_load(const char *lib, char *buf, size_t n) {
	struct kw_fns f;
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		snprintf(buf, n, "%s", e != NULL ? e : "dlopen failed");
		return -1;
	}
#define KW_SYM(name) \
	*(void **)(&f.name) = dlsym(h, #name); \
	if (f.name == NULL) { dlclose(h); snprintf(buf, n, "%s lacks %s", lib, #name); return -1; }
	KW_SYM(OpenSSL_version_num)
	KW_SYM(OpenSSL_version)
	KW_SYM(d2i_PrivateKey)
	KW_SYM(EVP_PKEY_free)
	KW_SYM(EVP_PKEY_get_size)
	KW_SYM(EVP_PKEY_CTX_new)
	KW_SYM(EVP_PKEY_CTX_free)
	KW_SYM(EVP_PKEY_sign_init)
	KW_SYM(EVP_PKEY_CTX_set_rsa_padding)
	KW_SYM(EVP_PKEY_CTX_set_signature_md)
	KW_SYM(EVP_sha256)
	KW_SYM(EVP_PKEY_sign)
	KW_SYM(ERR_get_error)
	KW_SYM(ERR_error_string_n)
	KW_SYM(ERR_clear_error)
#undef KW_SYM
	if (f.OpenSSL_version_num() < KW_MIN_VERSION) {
		snprintf(buf, n, "%s is %s, older than OpenSSL 3.0", lib, f.OpenSSL_version(KW_OPENSSL_VERSION));
		dlclose(h);
		return -1;
	}
	kw = f;
	return 0;
}

static const char *kw_version(void) { return kw.OpenSSL_version(KW_OPENSSL_VERSION); }

// OpenSSL's error queue is per thread and a goroutine may change threads
// between two cgo calls, so each trampoline clears the queue first and
// takes its error out before it returns, within one call.

// kw_new_pkey parses a PKCS#1 RSAPrivateKey DER. *err is 0 on success.
static EVP_PKEY *kw_new_pkey(const unsigned char *der, long len, unsigned long *err) {
	kw.ERR_clear_error();
	const unsigned char *p = der;
	EVP_PKEY *k = kw.d2i_PrivateKey(KW_EVP_PKEY_RSA, NULL, &p, len);
	*err = 0;
	if (k == NULL) {
		*err = kw.ERR_get_error();
		if (*err == 0) *err = (unsigned long)-1;
		kw.ERR_clear_error();
	}
	return k;
}

static void kw_free_pkey(EVP_PKEY *k) { kw.EVP_PKEY_free(k); }
static int kw_pkey_size(EVP_PKEY *k) { return kw.EVP_PKEY_get_size(k); }

// kw_new_sign_ctx makes a context ready to sign SHA-256 digests with
// RSASSA-PKCS1-v1_5 (RFC 8017 §8.2); it can sign any number of times.
static EVP_PKEY_CTX *kw_new_sign_ctx(EVP_PKEY *k, unsigned long *err) {
	kw.ERR_clear_error();
	*err = 0;
	EVP_PKEY_CTX *c = kw.EVP_PKEY_CTX_new(k, NULL);
	if (c == NULL) goto fail;
	if (kw.EVP_PKEY_sign_init(c) <= 0 ||
	    kw.EVP_PKEY_CTX_set_rsa_padding(c, KW_RSA_PKCS1_PADDING) <= 0 ||
	    kw.EVP_PKEY_CTX_set_signature_md(c, kw.EVP_sha256()) <= 0) {
		kw.EVP_PKEY_CTX_free(c);
		c = NULL;
		goto fail;
	}
	return c;
fail:
	*err = kw.ERR_get_error();
	if (*err == 0) *err = (unsigned long)-1;
	kw.ERR_clear_error();
	return NULL;
}

static void kw_free_ctx(EVP_PKEY_CTX *c) { kw.EVP_PKEY_CTX_free(c); }

// kw_sign signs digest into sig (cap bytes); it returns the signature's
// length, or 0 with *err set.
static size_t kw_sign(EVP_PKEY_CTX *c, unsigned char *sig, size_t cap,
		const unsigned char *digest, size_t dlen, unsigned long *err) {
	kw.ERR_clear_error();
	*err = 0;
	size_t n = cap;
	if (kw.EVP_PKEY_sign(c, sig, &n, digest, dlen) <= 0) {
		*err = kw.ERR_get_error();
		if (*err == 0) *err = (unsigned long)-1;
		kw.ERR_clear_error();
		return 0;
	}
	return n;
}

static void kw_error_string(unsigned long e, char *buf, size_t n) {
	kw.ERR_error_string_n(e, buf, n);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// libcrypto is the soname of OpenSSL 3's libcrypto, whatever its minor
// version.
const libcrypto = "libcrypto.so.3"

// load opens libcrypto.so.3 and checks that it is OpenSSL 3 or later. It
// returns the version string.
func load() (string, error) { return loadLibrary(libcrypto) }

// loadLibrary opens lib, resolves the symbols and checks the version. A
// failure leaves the functions already loaded untouched, so tests may try
// other libraries.
func loadLibrary(lib string) (string, error) {
	clib := C.CString(lib)
	defer C.free(unsafe.Pointer(clib))
	var buf [256]C.char
	if C.kw_load(clib, &buf[0], C.size_t(len(buf))) != 0 {
		return "", fmt.Errorf("%w: %s", ErrUnavailable, C.GoString(&buf[0]))
	}
	return C.GoString(C.kw_version()), nil
}

// opensslError turns an OpenSSL error code into an error naming op.
// OpenSSL's error strings name the library, the reason and the code; they
// never carry key material.
func opensslError(op string, code C.ulong) error {
	if code == C.ulong(^C.ulong(0)) {
		return fmt.Errorf("openssl: %s failed (no error queued)", op)
	}
	var buf [256]C.char
	C.kw_error_string(code, &buf[0], C.size_t(len(buf)))
	return fmt.Errorf("openssl: %s: %s", op, C.GoString(&buf[0]))
}

// newPKey parses a PKCS#1 RSAPrivateKey DER into an EVP_PKEY. OpenSSL
// copies what it needs: der may be cleared as soon as this returns.
func newPKey(der []byte) (unsafe.Pointer, int, error) {
	if len(der) == 0 {
		return nil, 0, errors.New("openssl: empty key")
	}
	var code C.ulong
	k := C.kw_new_pkey((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)), &code)
	if k == nil {
		return nil, 0, opensslError("parse RSA private key", code)
	}
	return unsafe.Pointer(k), int(C.kw_pkey_size(k)), nil
}

// freePKey frees an EVP_PKEY; OpenSSL cleanses the private numbers.
func freePKey(k unsafe.Pointer) { C.kw_free_pkey((*C.EVP_PKEY)(k)) }

// newSignCtx makes a context that signs SHA-256 digests with
// RSASSA-PKCS1-v1_5 under k. A context serves one sign at a time.
func newSignCtx(k unsafe.Pointer) (unsafe.Pointer, error) {
	var code C.ulong
	c := C.kw_new_sign_ctx((*C.EVP_PKEY)(k), &code)
	if c == nil {
		return nil, opensslError("set up RSA signing", code)
	}
	return unsafe.Pointer(c), nil
}

// freeSignCtx frees a context from newSignCtx.
func freeSignCtx(c unsafe.Pointer) { C.kw_free_ctx((*C.EVP_PKEY_CTX)(c)) }

// signDigest signs digest with ctx c into sig and returns the length used.
func signDigest(c unsafe.Pointer, sig, digest []byte) (int, error) {
	var code C.ulong
	n := C.kw_sign((*C.EVP_PKEY_CTX)(c),
		(*C.uchar)(unsafe.Pointer(&sig[0])), C.size_t(len(sig)),
		(*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)), &code)
	if n == 0 {
		return 0, opensslError("RSA sign", code)
	}
	return int(n), nil
}
