package host

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"gatehouse.dev/platform/config"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// connect connects with the target's options (no reconnects).
func connect(url string, opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect(url, append(opts, nats.NoReconnect(), nats.Timeout(5*time.Second))...)
}

// With nothing configured, the embedded server listens on loopback, requires
// the nkey generated under the data dir (kept 0600 and reused after a
// restart), and refuses a client without it.
func TestEmbeddedNATSRequiresGeneratedCredentials(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	target, err := startNATS(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(target.url[len("nats://"):]); host != "127.0.0.1" {
		t.Fatalf("embedded server at %s, want loopback", target.url)
	}
	info, err := os.Stat(filepath.Join(cfg.DataDir, NATSSeedFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("seed file: %v, %v", info, err)
	}
	if nc, err := connect(target.url); err == nil || !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a client without credentials: %v, want an authorization violation", err)
	}
	nc, err := connect(target.url, target.opts...)
	if err != nil {
		t.Fatalf("Gatehouse refused by its own server: %v", err)
	}
	nc.Close()
	target.srv.Shutdown()

	// A restart uses the same credentials: the old options still connect.
	again, err := startNATS(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer again.srv.Shutdown()
	if nc, err := connect(again.url, target.opts...); err != nil {
		t.Fatalf("the credentials changed across a restart: %v", err)
	} else {
		nc.Close()
	}
}

// Configured credentials replace the generated ones.
func TestEmbeddedNATSWithConfiguredPassword(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.NATS.User, cfg.NATS.Password = "gatehouse", "a-long-nats-password"
	target, err := startNATS(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer target.srv.Shutdown()
	if nc, err := connect(target.url, nats.UserInfo("gatehouse", "wrong")); err == nil {
		nc.Close()
		t.Fatal("a wrong password was accepted")
	}
	nc, err := connect(target.url, nats.UserInfo("gatehouse", "a-long-nats-password"))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := os.Stat(filepath.Join(cfg.DataDir, NATSSeedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an nkey was generated although credentials are configured: %v", err)
	}
}

// An external NATS with TLS (verifying clients) and a password: Gatehouse
// connects with the configured CA, client certificate and password, and
// fails without the CA.
func TestExternalNATSWithTLSAndPassword(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	serverCert := issue(t, ca, caKey, "nats", dir, "server")
	issue(t, ca, caKey, "gatehouse", dir, "client")
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		Username: "gatehouse", Password: "nats-password-for-tests",
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	_, port, _ := net.SplitHostPort(srv.Addr().String())

	cfg := config.Default()
	cfg.NATS.URL = "tls://localhost:" + port
	cfg.NATS.User, cfg.NATS.Password = "gatehouse", "nats-password-for-tests"
	cfg.NATS.TLS = config.NATSTLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	target, err := startNATS(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if target.srv != nil {
		t.Fatal("an embedded server was started for an external NATS")
	}
	nc, err := connect(target.url, target.opts...)
	if err != nil {
		t.Fatalf("connect with TLS and password: %v", err)
	}
	if _, err := nc.TLSConnectionState(); err != nil {
		t.Fatalf("not connected over TLS: %v", err)
	}
	nc.Close()

	for what, change := range map[string]func(c *config.Config){
		"without the CA":                 func(c *config.Config) { c.NATS.TLS.CAFile = "" },
		"without the client certificate": func(c *config.Config) { c.NATS.TLS.CertFile, c.NATS.TLS.KeyFile = "", "" },
		"with a wrong password":          func(c *config.Config) { c.NATS.Password = "nats-password-for-test" },
	} {
		c := cfg
		change(&c)
		target, err := startNATS(c, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if nc, err := connect(target.url, target.opts...); err == nil {
			nc.Close()
			t.Errorf("%s: connected", what)
		}
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

// issue makes a certificate for name (server and client use), writes it and
// its key as <dir>/<file>.pem and <file>-key.pem, and returns it.
func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name, dir, file string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name, "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(dir, file+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, file+"-key.pem"), "PRIVATE KEY", keyDER)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The process's own connection to its embedded server goes without a socket,
// with the same credentials, and carries messages. (Only code in the process
// can open one; the server authenticates it as any client.)
func TestEmbeddedNATSInProcess(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	target, err := startNATS(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer target.srv.Shutdown()
	nc, err := connect(target.url, append(target.opts, nats.InProcessServer(target.srv))...)
	if err != nil {
		t.Fatalf("in-process connection with the credentials: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("probe")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("probe", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "x" {
		t.Fatalf("message over the in-process connection: %v, %v", m, err)
	}
}
