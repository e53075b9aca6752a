package eventlog_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/testkit"
)

// subjectsMeasured is how many aggregate subjects BenchmarkCompactedSubjectMemory
// fills a stream with.
const subjectsMeasured = 200_000

// BenchmarkCompactedSubjectMemory measures what each aggregate subject of a stream
// that keeps one message per subject (a compacted TOKEN stream: one subject
// per live session) costs the NATS server in memory and on disk: a stream of
// subjectsMeasured subjects with one ≈1.5 KB message each (a session
// snapshot's size) is written, the server restarted cleanly on its store,
// and the heap compared with that of a server holding the empty stream
// (both after a GC; the per-subject index, psim, is what stays). Printed
// per subject and per million (issue 16: NATS memory per million aggregate
// subjects). The server is embedded: heap is the server's.
func BenchmarkCompactedSubjectMemory(b *testing.B) {
	for b.Loop() {
		ctx := context.Background()
		srv := testkit.StartNATS(b)
		_, js := srv.Connect(b)
		if _, err := eventlog.Open(ctx, js, eventlog.StreamConfig{Name: "SUBJECTS", Prefix: "subj", LastPerSubject: true}); err != nil {
			b.Fatal(err)
		}
		empty := heapAfterRestart(b, srv)
		_, js = srv.Connect(b)
		payload := []byte(strings.Repeat("x", 1500))
		began := time.Now()
		for i := 0; i < subjectsMeasured; i++ {
			if _, err := js.PublishAsync("subj.session."+ulid.Make().String(), payload); err != nil {
				b.Fatal(err)
			}
			if i%4000 == 3999 {
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		wrote := time.Since(began)
		st, err := js.Stream(ctx, "SUBJECTS")
		if err != nil {
			b.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil || info.State.NumSubjects != subjectsMeasured {
			b.Fatalf("stream holds %d subjects, %v", info.State.NumSubjects, err)
		}
		disk := float64(info.State.Bytes) / subjectsMeasured
		full := heapAfterRestart(b, srv)
		perSubject := (float64(full) - float64(empty)) / subjectsMeasured
		fmt.Printf("NATS per aggregate subject (one 1.5 KB message each, %d subjects written in %v): heap %.0f B after a clean restart, %.0f MiB per million; disk %.0f B\n",
			subjectsMeasured, wrote.Round(time.Millisecond), perSubject, perSubject*1e6/(1<<20), disk)
		b.ReportMetric(perSubject, "heap-B/subject")
		b.ReportMetric(perSubject*1e6/(1<<20), "heap-MiB/1M-subjects")
	}
}

// heapAfterRestart restarts the server on its store, waits until its stream
// answers, and returns the heap in use after a GC.
func heapAfterRestart(b *testing.B, srv *testkit.NATSServer) uint64 {
	b.Helper()
	srv.Stop()
	srv.Start(b)
	_, js := srv.Connect(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		st, err := js.Stream(ctx, "SUBJECTS")
		if err == nil {
			if _, err = st.Info(ctx, jetstream.WithSubjectFilter("subj.none")); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
