// Package inprocess tests services composed in one test process, as
// `gatehouse serve` composes them but without the binary: real NATS
// JetStream (platform/testkit), a real PostgreSQL database, real gRPC over
// loopback and a real HTTP server, with each service built through its public
// package (New, RegisterGRPC, RegisterHTTP, Run).
//
// It exists because a service's own tests may not import another service
// (see e2e/importrules), while the token service cannot do anything useful
// without the authorize service (clients, codes, PKCE, device grants) and the
// accounts service (passwords): its in-process tests therefore live here, in
// the one module allowed to compose services, instead of against stand-ins
// that would re-implement — and so test — the other services' rules.
package inprocess
