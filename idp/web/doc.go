// Package web holds what every Keyward handler package shares: the OAuth
// 2.0 error model (Error and its codes, RFC 6749 §5.2) and its one writer
// (WriteError), the JSON writer (WriteJSON), the func(w, r) error handler
// adapter (Handle), the request context the server's middleware fills in
// (RequestID, ClientIP, LogHandler) and the strict JSON body decoding of the
// account and admin APIs (DecodeStrict, ReadJSONBody).
//
// It is the bottom of the HTTP layers: it imports nothing of Keyward but
// storage (to recognise an unreachable database), holds no state and binds
// no route. The middleware that sets the request context stays in idp.
package web
