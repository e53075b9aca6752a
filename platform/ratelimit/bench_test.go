package ratelimit_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/testkit"
)

// BenchmarkTake measures the rate-limit check of one request against the
// shared store (embedded NATS JetStream, in memory), as the sign-in pages pay
// it, and reports the median and 99th percentile of each request's cost:
//
//   - login_success: a sign-in with the right password: a token from the
//     address's and the account's buckets, then both given back;
//   - login_failure: a wrong password: both tokens kept (a budget large
//     enough never to refuse);
//   - new_address: one token from a key no replica has seen (one append);
//   - other_replica: one token from a key another replica changed last (a
//     read, then the append);
//   - reference_publish: one conditional JetStream publish with a TTL and
//     nothing else, the floor of the numbers above on this machine.
func BenchmarkTake(b *testing.B) {
	srv := testkit.StartNATS(b)
	var js jetstream.JetStream
	open := func() *ratelimit.Limiter {
		_, js = srv.Connect(b)
		store, err := ratelimit.OpenStore(context.Background(), js, ratelimit.StoreConfig{})
		if err != nil {
			b.Fatal(err)
		}
		return ratelimit.New(ratelimit.Options{Store: store, Logger: slog.New(slog.DiscardHandler)})
	}
	a, other := open(), open()
	ctx := context.Background()
	big := ratelimit.Rule{Name: "bench", Burst: 1 << 30, Every: time.Millisecond}
	perIP := ratelimit.Rule{Name: "bench_ip", Burst: 1 << 30, Every: time.Millisecond}
	perAccount := ratelimit.Rule{Name: "bench_account", Burst: 1 << 30, Every: time.Millisecond}

	cases := []struct {
		name string
		run  func(i int) error
	}{
		{"login_success", func(i int) error {
			d, err := a.Take(ctx, ratelimit.Key{Rule: perIP, Subject: "192.0.2.1"}, ratelimit.Key{Rule: perAccount, Subject: fmt.Sprint("user", i%100)})
			if err == nil {
				a.Refund(ctx, d)
			}
			return err
		}},
		{"login_failure", func(i int) error {
			_, err := a.Take(ctx, ratelimit.Key{Rule: perIP, Subject: "192.0.2.2"}, ratelimit.Key{Rule: perAccount, Subject: fmt.Sprint("user", i%100)})
			return err
		}},
		{"new_address", func(i int) error {
			_, err := a.Take(ctx, ratelimit.Key{Rule: big, Subject: fmt.Sprint("new", i)})
			return err
		}},
		{"other_replica", func(i int) error {
			k := ratelimit.Key{Rule: big, Subject: "shared"}
			if _, err := other.Take(ctx, k); err != nil {
				return err
			}
			start := time.Now()
			_, err := a.Take(ctx, k)
			otherReplicaCost = time.Since(start)
			return err
		}},
		{"reference_publish", func(i int) error {
			ack, err := js.Publish(ctx, "ratelimit.bench_reference.x", []byte("0"),
				jetstream.WithExpectLastSequencePerSubject(referenceSeq), jetstream.WithMsgTTL(time.Minute))
			if err == nil {
				referenceSeq = ack.Sequence
			}
			return err
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			costs := make([]time.Duration, 0, b.N)
			i := 0
			for b.Loop() {
				start := time.Now()
				otherReplicaCost = 0
				if err := c.run(i); err != nil {
					b.Fatal(err)
				}
				cost := time.Since(start)
				if otherReplicaCost > 0 {
					cost = otherReplicaCost
				}
				costs = append(costs, cost)
				i++
			}
			slices.Sort(costs)
			b.ReportMetric(float64(costs[len(costs)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(costs[len(costs)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// otherReplicaCost is the cost of the measured part of other_replica.
var otherReplicaCost time.Duration

// referenceSeq is the last sequence of reference_publish's subject.
var referenceSeq uint64
