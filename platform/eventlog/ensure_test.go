package eventlog_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
)

// Ten replicas starting together, as a rollout starts them, open the same
// R3 stream of a three-node cluster at once (three streams in turn) and read
// it at once: every one gets it. JetStream leaves some of those requests
// unanswered; before EnsureStream asked again, those replicas failed their
// start with "context deadline exceeded", and before it waited for the
// stream's leader, a read right after failed with "no responders" (both
// found by the node loss drill, e2e/node_loss_test.go).
func TestReplicasOpenTheSameReplicatedStreamAtOnce(t *testing.T) {
	urls := startCluster(t, 3)
	for _, stream := range []string{"ONE", "TWO", "THREE"} {
		openAtOnce(t, urls, stream)
	}
}

// openAtOnce opens the stream from ten connections at once.
func openAtOnce(t *testing.T, urls, stream string) {
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			nc, err := nats.Connect(urls)
			if err != nil {
				errs[i] = err
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				errs[i] = err
				return
			}
			l, err := eventlog.Open(context.Background(), js, eventlog.StreamConfig{Name: stream, Prefix: strings.ToLower(stream), Replicas: 3})
			if err == nil {
				_, _, err = l.Load(context.Background(), eventlog.Ref{Type: "user", ID: "one"})
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s, replica %d: %v", stream, i, err)
		}
	}
}

// startCluster starts n embedded JetStream servers routed into one cluster
// and returns their client URLs once the cluster has a meta leader.
func startCluster(t *testing.T, n int) string {
	t.Helper()
	routes := make([]int, n)
	for i := range routes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routes[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var routeURLs, clientURLs []string
	for _, p := range routes {
		routeURLs = append(routeURLs, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i := range n {
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: routes[i]},
			Routes:  server.RoutesFromStr(strings.Join(routeURLs, ",")),
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(srv.Shutdown)
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %d not ready", i)
		}
		clientURLs = append(clientURLs, srv.ClientURL())
	}
	urls := strings.Join(clientURLs, ",")
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return urls
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster elected no meta leader: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
