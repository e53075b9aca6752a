package natsserver_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/natsserver"
)

// subjects is how many distinct subjects BenchmarkSubjectMemory fills.
const subjects = 1_000_000

// BenchmarkSubjectMemory measures what a JetStream stream costs the server
// per subject (every aggregate — user, session — is a subject of its own,
// indexed in memory by the server): one event-sized message published to
// each of a million distinct subjects of a file-storage stream, as the event
// log's streams are, and the server's memory read before and after —
// resident memory as /varz reports it, and the Go heap in use after a
// collection (the server runs in this process; the publisher's garbage is
// collected first). Run it with -benchtime 1x.
func BenchmarkSubjectMemory(b *testing.B) {
	for range b.N {
		srv, err := natsserver.Start(natsserver.Options{StoreDir: b.TempDir(), Anonymous: true})
		if err != nil {
			b.Fatal(err)
		}
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		ctx := b.Context()
		stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.session.>"}, Storage: jetstream.FileStorage})
		if err != nil {
			b.Fatal(err)
		}
		payload := make([]byte, 400) // about a SessionStarted event in its envelope
		rss0, heap0 := serverMemory(b, srv)
		began := time.Now()
		for i := range subjects {
			// A ULID-sized aggregate id, as the event log's subjects carry.
			subject := fmt.Sprintf("bench.session.01JZ%022d", i)
			if _, err := js.PublishAsync(subject, payload); err != nil {
				b.Fatal(err)
			}
			if i%2_000 == 0 { // within the client's 4,000 outstanding publishes
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		took := time.Since(began)
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("bench.session.01JZ0000000000000000000000"))
		if err != nil {
			b.Fatal(err)
		}
		if info.State.NumSubjects != subjects {
			b.Fatalf("the stream holds %d subjects, want %d", info.State.NumSubjects, subjects)
		}
		rss1, heap1 := serverMemory(b, srv)
		perMillion := float64(subjects) / 1e6
		b.ReportMetric(float64(rss1-rss0)/(1<<20)/perMillion, "rss-MiB/1M-subjects")
		b.ReportMetric(float64(heap1-heap0)/(1<<20)/perMillion, "heap-MiB/1M-subjects")
		b.ReportMetric(float64(info.State.Bytes)/(1<<20)/perMillion, "store-MiB/1M-subjects")
		b.ReportMetric(float64(subjects)/took.Seconds(), "publishes/s")
		nc.Close()
		srv.Shutdown()
	}
}

// serverMemory is the process's resident memory (from the server's Varz)
// and its Go heap in use, after a collection.
func serverMemory(b *testing.B, srv *natsserver.Server) (rss, heap uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	v, err := srv.Varz()
	if err != nil {
		b.Fatal(err)
	}
	return uint64(v.Mem), ms.HeapInuse
}
