// Package metrics holds the Prometheus collectors every layer of Keyward
// counts in (type Metrics), on a registry of its own, and their exposition:
// Handler for the operator's listener, PublicHandler with the login failure
// reasons collapsed (AD-09, TE-11).
//
// It imports nothing of Keyward: the label values it bounds (grant types,
// throttle kinds) come in through Options from idp, which also decides which
// listener serves which handler. A nil *Metrics records nothing.
package metrics
