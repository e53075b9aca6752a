package eventlog_test

import (
	"context"
	"errors"
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

// A replica that asks for a stream the cluster cannot place yet (a node
// not yet back after a crash, a cluster still growing to the size or the
// placement the stream asks for) gets "no suitable peers for placement": it
// waits for the cluster instead of failing its start (the node loss drill's
// processes, starting with the cluster, failed on it).
func TestStreamWaitsForAPeerToJoin(t *testing.T) {
	urls, opts := startClusterNodes(t, 3, 3)
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// A fourth node, the only one with the tag the stream asks for, joins a
	// second later.
	late := &server.Options{
		ServerName: "late", Host: "127.0.0.1", Port: server.RANDOM_PORT, Tags: []string{"late"},
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: server.RANDOM_PORT},
		Routes:  opts[0].Routes,
	}
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		time.Sleep(time.Second)
		runNode(t, late)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	stream, err := eventlog.EnsureStream(ctx, js, jetstream.StreamConfig{Name: "LATE", Subjects: []string{"late.>"},
		Placement: &jetstream.Placement{Tags: []string{"late"}}})
	<-joined
	if err != nil {
		t.Fatalf("a stream asked for before its peer joined: %v", err)
	}
	if got := stream.CachedInfo().Cluster; got == nil || got.Leader != "late" {
		t.Fatalf("stream placed on %+v, want the late node", got)
	}
}

// A stream looked up before the cluster has elected its meta leader (a
// replica starting with a new cluster, whose last node is not up yet) is
// looked up again until the cluster answers: here, that it does not exist.
// A single request failed the replica's start ("token: context deadline
// exceeded", found by the node loss drill).
func TestFindStreamWaitsForTheCluster(t *testing.T) {
	urls, opts := startClusterNodes(t, 3, 2)
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, "NONE"); err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a single lookup before the cluster has a leader: %v, want no answer yet", err)
	}
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		time.Sleep(time.Second)
		runNode(t, opts[2])
	}()
	_, err = eventlog.FindStream(context.Background(), js, "NONE")
	<-joined
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("FindStream before the cluster was whole: %v, want stream not found", err)
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
	urls, _ := startClusterNodes(t, n, n)
	return urls
}

// startClusterNodes configures an n-node cluster, starts the first started
// of them and returns their client URLs, once the cluster has a meta leader
// if all were started, with every node's options (to start the others
// later).
func startClusterNodes(t *testing.T, n, started int) (string, []*server.Options) {
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
	opts := make([]*server.Options, n)
	for i := range n {
		opts[i] = &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: routes[i]},
			Routes:  server.RoutesFromStr(strings.Join(routeURLs, ",")),
		}
		if i < started {
			clientURLs = append(clientURLs, runNode(t, opts[i]).ClientURL())
		}
	}
	urls := strings.Join(clientURLs, ",")
	if started < n {
		return urls, opts
	}
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
			return urls, opts
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster elected no meta leader: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runNode starts one cluster node and stops it when the test ends.
func runNode(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("server %s not ready", opts.ServerName)
	}
	return srv
}
