package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/pgcluster"
)

// The pieces of a scaled deployment run as separate processes on loopback,
// as deploy/kubernetes runs them on machines: a three-node NATS JetStream
// cluster of real nats-server processes, a PostgreSQL server, replicas of
// each service (`gatehouse serve` with GATEHOUSE_SERVICES=<one service>),
// and in the test process the stand-ins for what Kubernetes gives: a
// round-robin TCP front per service's gRPC (a ClusterIP Service) and an HTTP
// front routing paths to the services' replicas (the Ingress).

// natsServerPackage is the nats-server of the version the platform embeds
// and deploy/kubernetes/nats.yaml runs, built from the module cache.
const natsServerPackage = "github.com/nats-io/nats-server/v2"

// natsServerBinary builds nats-server once per test run, next to gatehouse.
var natsServerBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(binary), "nats-server")
	build := exec.Command("go", "build", "-o", bin, natsServerPackage)
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build nats-server: %v\n%s", err, out)
	}
	return bin, nil
})

// natsCluster is three nats-server processes routed into one JetStream
// cluster, configured as deploy/kubernetes/nats.yaml does (a user and
// password, JetStream on file storage, cluster routes to every node) but
// without TLS: only loopback is reachable here.
type natsCluster struct {
	bin            string
	user, password string
	nodes          []*natsNode
}

// natsNode is one server of the cluster.
type natsNode struct {
	name                     string
	client, route, monitor   string
	conf                     string
	cmd                      *exec.Cmd
	exited                   chan struct{}
	log                      *bytes.Buffer
	killedAt, startedAgainAt time.Time
}

// startNATSCluster starts three clustered nats-server processes and waits
// until JetStream is healthy on each.
func startNATSCluster(t *testing.T) *natsCluster {
	t.Helper()
	bin, err := natsServerBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &natsCluster{bin: bin, user: "gatehouse", password: "nats-password-for-the-node-loss-test"}
	addrs := freeAddrs(t, 9)
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("%q", "nats://"+addrs[3*i+1]))
	}
	for i := range 3 {
		n := &natsNode{name: fmt.Sprintf("nats-%d", i), client: addrs[3*i], route: addrs[3*i+1], monitor: addrs[3*i+2]}
		dir := t.TempDir()
		n.conf = filepath.Join(dir, "nats.conf")
		conf := fmt.Sprintf(`server_name: %s
listen: %s
http: %s
max_payload: 1M
authorization {
  users: [ { user: %s, password: %q } ]
}
jetstream {
  store_dir: %q
  max_memory_store: 512M
  max_file_store: 2G
}
cluster {
  name: gatehouse
  listen: %s
  routes [ %s ]
}
`, n.name, n.client, n.monitor, c.user, c.password, filepath.Join(dir, "data"), n.route, strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		if err := c.start(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			n.stop()
			if t.Failed() {
				t.Logf("%s log (end):\n%s", n.name, tail(n.log.String()))
			}
		})
	}
	if err := c.waitHealthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs the node's server on its configuration (and store).
func (c *natsCluster) start(n *natsNode) error {
	n.log, n.exited = &bytes.Buffer{}, make(chan struct{})
	n.cmd = exec.Command(c.bin, "--config", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	return nil
}

// kill ends the node with SIGKILL, as when its machine dies.
func (n *natsNode) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.killedAt = time.Now()
}

// stop ends the node gracefully.
func (n *natsNode) stop() {
	if n.cmd == nil || n.cmd.ProcessState != nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// healthy reports whether the node's JetStream is up and current (its
// /healthz: the meta group and every stream and consumer it holds).
func (n *natsNode) healthy() bool {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + n.monitor + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitHealthy waits until every node is healthy; a node that exits fails
// at once.
func (c *natsCluster) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		healthy := 0
		for _, n := range c.nodes {
			select {
			case <-n.exited:
				return fmt.Errorf("%s exited; its log:\n%s", n.name, tail(n.log.String()))
			default:
			}
			if n.healthy() {
				healthy++
			} else if time.Now().After(deadline) {
				return fmt.Errorf("%s not healthy after %v; its log:\n%s", n.name, timeout, tail(n.log.String()))
			}
		}
		if healthy == len(c.nodes) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// urls is the client URLs of every node, as the services are given them.
func (c *natsCluster) urls() string {
	var u []string
	for _, n := range c.nodes {
		u = append(u, "nats://"+n.client)
	}
	return strings.Join(u, ",")
}

// restartablePostgres is a PostgreSQL server of the test's own, so that the
// test can stop it and start it again under the services.
type restartablePostgres struct {
	dir     string
	cluster *pgcluster.Cluster
}

// startPostgres starts a private cluster and creates the gatehouse database.
func startPostgres(t *testing.T) *restartablePostgres {
	t.Helper()
	p := &restartablePostgres{dir: dataDir(t)}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.cluster.Stop(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pg.CreateDatabase(ctx, p.cluster.URL("postgres"), "gatehouse"); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *restartablePostgres) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: p.dir, Fast: true})
	if err != nil {
		return err
	}
	p.cluster = c
	return nil
}

// stop shuts the server down (fast shutdown: every client is disconnected).
func (p *restartablePostgres) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.cluster.Stop(ctx)
}

// url is the gatehouse database's URL; it stays the same across restarts.
func (p *restartablePostgres) url() string { return p.cluster.URL("gatehouse") }

// tcpFront balances connections round-robin over a service's replicas, as
// a Kubernetes ClusterIP Service does: a gRPC client keeps its connection
// to one replica and, when that replica dies, connects again and lands on
// a live one.
type tcpFront struct {
	ln       net.Listener
	backends atomic.Pointer[[]string]
	next     atomic.Uint64
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func newTCPFront(t *testing.T, backends []string) *tcpFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tcpFront{ln: ln, conns: map[net.Conn]struct{}{}}
	f.backends.Store(&backends)
	go f.serve()
	t.Cleanup(f.close)
	return f
}

func (f *tcpFront) addr() string { return f.ln.Addr().String() }

// setBackend makes addr the i-th replica.
func (f *tcpFront) setBackend(i int, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	backends := slices.Clone(*f.backends.Load())
	backends[i] = addr
	f.backends.Store(&backends)
}

func (f *tcpFront) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.pipe(c)
	}
}

// pipe connects c to the next replica that accepts a connection.
func (f *tcpFront) pipe(c net.Conn) {
	backends := *f.backends.Load()
	start := int(f.next.Add(1))
	var b net.Conn
	for i := range backends {
		var err error
		if b, err = net.DialTimeout("tcp", backends[(start+i)%len(backends)], time.Second); err == nil {
			break
		}
	}
	if b == nil {
		c.Close()
		return
	}
	f.track(c, b)
	defer f.untrack(c, b)
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); done <- struct{}{} }()
	go func() { io.Copy(c, b); done <- struct{}{} }()
	<-done
}

func (f *tcpFront) track(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
}

func (f *tcpFront) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(f.conns, c)
	}
}

func (f *tcpFront) close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

// frontErrorHeader marks an answer the HTTP front made itself (no replica
// answered), so that the test tells it from the services' answers.
const frontErrorHeader = "X-Test-Front-Error"

// httpFront is the Ingress: it sends each request to a replica of the
// service owning its path, round-robin, and to the next replica when one
// refuses the connection (it is down), as an ingress controller does. A
// replica dying in the middle of a request gives 502 marked with
// frontErrorHeader.
type httpFront struct {
	srv      *http.Server
	ln       net.Listener
	mu       sync.Mutex
	backends map[string][]string // service → HTTP addresses of its replicas
	next     atomic.Uint64
	rt       http.RoundTripper
}

func newHTTPFront(t *testing.T) *httpFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &httpFront{ln: ln, backends: map[string][]string{},
		rt: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}}
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(ln)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

func (f *httpFront) base() string { return "http://" + f.ln.Addr().String() + "/" }

// setBackends names the replicas of a service.
func (f *httpFront) setBackends(service string, addrs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backends[service] = addrs
}

// setBackend makes addr the i-th replica of a service.
func (f *httpFront) setBackend(service string, i int, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	backends := slices.Clone(f.backends[service])
	backends[i] = addr
	f.backends[service] = backends
}

// serviceOf is the service owning a public path (deploy/README.md,
// "Reverse proxy").
func serviceOf(path string) string {
	switch {
	case path == "/authorize", strings.HasPrefix(path, "/.well-known/"), path == "/oauth2/registration", path == "/oauth2/device":
		return "authorize"
	case strings.HasPrefix(path, "/oauth2/"):
		return "token"
	default:
		return "web"
	}
}

func (f *httpFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	addrs := f.backends[serviceOf(r.URL.Path)]
	f.mu.Unlock()
	start := int(f.next.Add(1))
	for i := range addrs {
		req := r.Clone(r.Context())
		req.URL.Scheme, req.URL.Host, req.RequestURI = "http", addrs[(start+i)%len(addrs)], ""
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		resp, err := f.rt.RoundTrip(req)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			continue // down: the next replica
		}
		if err != nil {
			w.Header().Set(frontErrorHeader, "the replica failed during the request: "+err.Error())
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	w.Header().Set(frontErrorHeader, "no replica accepted the connection")
	w.WriteHeader(http.StatusBadGateway)
}

// startProcess starts `gatehouse serve` with env and waits until it is
// healthy; unlike startServe it returns its failure, so that several
// processes start at once.
func startProcess(t *testing.T, env []string, grpcAddr, httpAddr, opsAddr string) (*server, error) {
	s := &server{grpc: grpcAddr, http: httpAddr, ops: opsAddr, dataDir: dataDir(t), log: &bytes.Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = append(append(os.Environ(), env...),
		"GATEHOUSE_DATA_DIR="+s.dataDir,
		"GATEHOUSE_GRPC_ADDR="+grpcAddr,
		"GATEHOUSE_HTTP_ADDR="+httpAddr,
		"GATEHOUSE_OPS_ADDR="+opsAddr,
	)
	out := &lockedWriter{w: s.log}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })
	err := s.waitHealthy(90 * time.Second)
	if err != nil {
		return s, fmt.Errorf("gatehouse serve (%s) not healthy: %w\n%s", strings.Join(s.cmd.Env[len(s.cmd.Env)-8:], " "), err, tail(s.log.String()))
	}
	s.secret = internalSecret(t, s.cmd.Env)
	return s, nil
}

// waitHealthy waits until the process's health endpoint answers 200; a
// process that exits fails at once.
func (s *server) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			return errors.New("exited during start")
		default:
		}
		resp, err := http.Get("http://" + s.ops + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health: %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockedWriter lets a process's stdout and stderr share a buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
