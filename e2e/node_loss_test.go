package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNodeLoss is the failure drill of issue 16 ("survive node loss"): a
// scaled deployment — a three-node NATS JetStream cluster of real
// nats-server processes with every stream R3, PostgreSQL, and two replicas
// of each of the five services as separate `gatehouse serve` processes —
// under a steady mix of sign-ins through the pages (sign-in → consent →
// code → token), refreshes, client_credentials, introspections and
// revocations, loses in turn the NATS node leading the TOKEN stream
// (SIGKILL), a token replica (SIGKILL) and PostgreSQL (stopped, then
// started again). Each comes back afterwards.
//
// It proves that no request hangs past the request deadline and none is
// answered 500 (a request made while a dependency was down fails with 503;
// a request in flight on the killed replica is the only other failure, a
// 502 of the front); that every token answered 200 introspects active on
// every token replica, or inactive when it was revoked or rotated out; that
// every stream holds the same events on all three nodes, each event once,
// and at least one TokensIssued for every token pair answered 200; and that
// every projection's tables equal a rebuild from the streams. It prints the
// error window and the throughput before, during and after each fault.
func TestNodeLoss(t *testing.T) {
	const (
		requestDeadline = 3 * time.Second
		steady          = 5 * time.Second
		faultWindow     = 5 * time.Second
		recovery        = 4 * time.Second
	)
	began := time.Now()
	dep := startScaled(t, requestDeadline)
	t.Logf("3 NATS nodes, PostgreSQL and %d gatehouse processes ready in %v", len(dep.replicas)*2, time.Since(began).Round(time.Millisecond))

	dep.waitProjections(t)
	dr := newDriver(t, dep, requestDeadline)
	dr.start()
	time.Sleep(steady)

	// 1. The NATS node leading the TOKEN stream dies (SIGKILL).
	node := dep.streamLeader(t, "TOKEN")
	node.kill()
	dr.fault("NATS node "+node.name+" (TOKEN stream leader) killed", node.killedAt)
	time.Sleep(faultWindow)
	if err := dep.nats.start(node); err != nil {
		t.Fatal(err)
	}
	dr.fault("NATS node "+node.name+" started again", time.Now())
	if err := dep.nats.waitHealthy(30 * time.Second); err != nil {
		t.Fatalf("the NATS cluster did not heal: %v", err)
	}
	time.Sleep(recovery)

	// 2. A token replica dies (SIGKILL); its pod comes back on the same address.
	victim := dep.replicas["token"][0]
	victim.crash()
	dr.fault("token replica 0 killed", time.Now())
	time.Sleep(faultWindow)
	restarted, err := dep.startReplica(t, "token", 0, []string{victim.grpc, victim.http, victim.ops})
	if err != nil {
		t.Fatal(err)
	}
	dep.replicas["token"][0] = restarted
	dr.fault("token replica 0 started again", time.Now())
	time.Sleep(recovery)

	// 3. PostgreSQL stops and starts again.
	dr.fault("PostgreSQL stopping (fast shutdown)", time.Now())
	if err := dep.pg.stop(); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	time.Sleep(2 * time.Second)
	if err := dep.pg.start(); err != nil {
		t.Fatalf("start PostgreSQL again: %v", err)
	}
	dr.fault("PostgreSQL started again", time.Now())
	time.Sleep(recovery)
	dr.stop()
	t.Logf("+%.1fs the mix stopped", time.Since(dr.began).Seconds())
	time.Sleep(2 * time.Second) // the last activity of sessions is recorded (GATEHOUSE_ACTIVITY_FLUSH_INTERVAL)

	dr.report()
	dr.checkAnswers()
	checked := time.Now()
	dr.checkTokens()
	t.Logf("tokens checked in %v", time.Since(checked).Round(time.Millisecond))
	dep.checkStreams(t, dr.issuedPairs())
	t.Logf("+%.1fs streams checked", time.Since(dr.began).Seconds())
	dep.checkProjections(t)
	t.Logf("+%.1fs projections checked", time.Since(dr.began).Seconds())
	t.Logf("drill took %v", time.Since(began).Round(time.Millisecond))
}

// scaled is the deployment under test.
type scaled struct {
	nats     *natsCluster
	pg       *restartablePostgres
	front    *httpFront
	grpc     map[string]*tcpFront // service → its gRPC front
	replicas map[string][]*server // service → its replicas
	env      map[string][]string  // service → the environment its replicas add
	secret   string
}

var scaledServices = []string{"accounts", "authorize", "token", "notify", "web"}

// startScaled starts the NATS cluster, PostgreSQL and two replicas of each
// service, all at once, behind the fronts.
func startScaled(t *testing.T, requestDeadline time.Duration) *scaled {
	t.Helper()
	d := &scaled{grpc: map[string]*tcpFront{}, replicas: map[string][]*server{}, env: map[string][]string{}}
	d.nats = startNATSCluster(t)
	d.pg = startPostgres(t)
	d.front = newHTTPFront(t)
	secret, kek := make([]byte, 32), make([]byte, 32)
	rand.Read(secret)
	rand.Read(kek)
	d.secret = hex.EncodeToString(secret)

	addrs := map[string][]string{}
	for _, svc := range scaledServices {
		addrs[svc] = freeAddrs(t, 6) // grpc, http, ops of each replica
		d.grpc[svc] = newTCPFront(t, []string{addrs[svc][0], addrs[svc][3]})
		d.front.setBackends(svc, []string{addrs[svc][1], addrs[svc][4]})
	}
	common := []string{
		"GATEHOUSE_NATS_URL=" + d.nats.urls(),
		"GATEHOUSE_NATS_USER=" + d.nats.user,
		"GATEHOUSE_NATS_PASSWORD=" + d.nats.password,
		"GATEHOUSE_NATS_REPLICAS=3",
		"GATEHOUSE_DATABASE_URL=" + d.pg.url(),
		"GATEHOUSE_PUBLIC_URL=" + d.front.base(),
		"GATEHOUSE_MATRIX_SECRET=" + homeserverSecret,
		"GATEHOUSE_MATRIX_SERVER_NAME=example.org",
		"GATEHOUSE_INTERNAL_SECRET=" + d.secret,
		"GATEHOUSE_SECRETS_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(kek),
		"GATEHOUSE_WEB_SECRET=" + strings.Repeat("web secret of the drill ", 2),
		"GATEHOUSE_REQUEST_TIMEOUT=" + requestDeadline.String(),
		"GATEHOUSE_ACTIVITY_FLUSH_INTERVAL=1s",
		"GATEHOUSE_LOG_LEVEL=warn",
		"GATEHOUSE_RATE_LIMIT_AUTHORIZATION_BURST=100000",
		"GATEHOUSE_RATE_LIMIT_CLIENT_REGISTRATION_BURST=100000",
	}
	for _, svc := range scaledServices {
		env := append([]string{}, common...)
		env = append(env, "GATEHOUSE_SERVICES="+svc)
		for _, other := range scaledServices {
			if other != svc {
				env = append(env, "GATEHOUSE_ENDPOINT_"+strings.ToUpper(other)+"="+d.grpc[other].addr())
			}
		}
		d.env[svc] = env
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, svc := range scaledServices {
		d.replicas[svc] = make([]*server, 2)
		for i := range 2 {
			wg.Go(func() {
				s, err := d.startReplica(t, svc, i, addrs[svc][3*i:3*i+3])
				mu.Lock()
				defer mu.Unlock()
				d.replicas[svc][i] = s
				if err != nil {
					errs = append(errs, err)
				}
			})
		}
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return d
}

// startReplica starts replica i of svc on addrs (gRPC, HTTP, ops). An
// address another process took meanwhile (the tests of other packages pick
// free ports too) makes it start again on new ones, which the fronts then
// send to.
func (d *scaled) startReplica(t *testing.T, svc string, i int, addrs []string) (*server, error) {
	s, err := startProcess(t, d.env[svc], addrs[0], addrs[1], addrs[2])
	for try := 0; err != nil && strings.Contains(err.Error(), "address already in use") && try < 3; try++ {
		t.Logf("%s replica %d: an address was taken meanwhile; starting it on others", svc, i)
		addrs = freeAddrs(t, 3)
		d.grpc[svc].setBackend(i, addrs[0])
		d.front.setBackend(svc, i, addrs[1])
		s, err = startProcess(t, d.env[svc], addrs[0], addrs[1], addrs[2])
	}
	return s, err
}
