// Command floorserver answers token introspection with the least work a Go
// net/http server can do for it: the machine's floor, which
// BenchmarkLoadExternal measures under the same load as Gatehouse's
// introspection so that its latency reads against what this machine allows.
//
// It serves POST /oauth2/introspect on the address given as its argument
// (127.0.0.1:0 picks a port; the address bound is printed on a line of its
// own): the bearer secret of GATEHOUSE_MATRIX_SECRET compared in constant
// time, the form read under a body cap, the token looked up in a map, and a
// fixed answer, a copy of what Gatehouse answers for the token in
// FLOOR_ANSWER (JSON), written as uncacheable JSON. No tracing, metrics,
// security headers, deadline or token checksum: what Gatehouse adds to that
// is the difference between the two.
package main

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: floorserver ADDR TOKEN")
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "floorserver:", err)
		os.Exit(1)
	}
	fmt.Println(lis.Addr().String())
	answers := map[string][]byte{os.Args[2]: []byte(os.Getenv("FLOOR_ANSWER"))}
	inactive := []byte(`{"active":false}`)
	secret := []byte("Bearer " + os.Getenv("GATEHOUSE_MATRIX_SECRET"))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/introspect", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), secret) != 1 {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		answer, ok := answers[r.PostForm.Get("token")]
		if !ok {
			answer = inactive
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Cache-Control"] = []string{"no-store"}
		w.Write(answer)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10e9, IdleTimeout: 120e9}
	fmt.Fprintln(os.Stderr, "floorserver:", srv.Serve(lis))
	os.Exit(1)
}
