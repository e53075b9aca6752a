package host

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/natsserver"
	"gatehouse.dev/platform/secretfile"
)

// NATSSeedFile is where a process keeps the nkey seed it generated for its
// embedded NATS server (under the data dir) when no credentials are configured.
const NATSSeedFile = "secrets/nats-nkey-seed"

// natsTarget is the NATS to connect to: an embedded server (srv) or an
// external one, and how to authenticate.
type natsTarget struct {
	url  string
	opts []nats.Option
	srv  *natsserver.Server
}

// startNATS starts the embedded server when no NATS URL is configured, with
// the configured credentials or an nkey generated under the data dir, and
// returns where and how to connect; for an external NATS, the configured
// credentials and TLS.
func startNATS(cfg config.Config, logger *slog.Logger) (natsTarget, error) {
	n := cfg.NATS
	if n.URL != "" {
		opts, err := externalNATSOptions(n)
		return natsTarget{url: n.URL, opts: opts}, err
	}
	dir := filepath.Join(cfg.DataDir, "nats")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return natsTarget{}, fmt.Errorf("nats store: %w", err)
	}
	sopts := natsserver.Options{StoreDir: dir}
	if n.Listen != "" {
		host, port, err := net.SplitHostPort(n.Listen)
		if err != nil {
			return natsTarget{}, fmt.Errorf("nats.listen: %w", err)
		}
		sopts.Host = host
		if sopts.Port, err = strconv.Atoi(port); err != nil {
			return natsTarget{}, fmt.Errorf("nats.listen: %w", err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			logger.Warn("the embedded NATS server listens beyond this machine, without TLS: keep it on a private network, or use an external NATS with TLS", "listen", n.Listen)
		}
	}
	var (
		opts  []nats.Option
		creds string
	)
	switch {
	case n.User != "":
		sopts.User, sopts.Password = n.User, string(n.Password)
		opts, creds = append(opts, nats.UserInfo(n.User, string(n.Password))), "nats.user"
	case n.NkeySeedFile != "":
		seed, err := os.ReadFile(n.NkeySeedFile)
		if err != nil {
			return natsTarget{}, fmt.Errorf("nats.nkey_seed_file: %w", err)
		}
		kp, err := nkeys.FromSeed(seed)
		if err != nil {
			return natsTarget{}, fmt.Errorf("nats.nkey_seed_file %s does not hold an nkey seed", n.NkeySeedFile)
		}
		if sopts.Nkey, err = kp.PublicKey(); err != nil {
			return natsTarget{}, fmt.Errorf("nats.nkey_seed_file: %w", err)
		}
		opts, creds = append(opts, nats.Nkey(sopts.Nkey, kp.Sign)), "nats.nkey_seed_file"
	default:
		path := filepath.Join(cfg.DataDir, NATSSeedFile)
		raw, err := secretfile.LoadOrCreate(path, 32)
		if err != nil {
			return natsTarget{}, fmt.Errorf("nats credentials: %w", err)
		}
		kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, raw)
		if err != nil {
			return natsTarget{}, fmt.Errorf("nats credentials: %w", err)
		}
		if sopts.Nkey, err = kp.PublicKey(); err != nil {
			return natsTarget{}, fmt.Errorf("nats credentials: %w", err)
		}
		opts, creds = append(opts, nats.Nkey(sopts.Nkey, kp.Sign)), path
	}
	srv, err := natsserver.Start(sopts)
	if err != nil {
		return natsTarget{}, err
	}
	logger.Info("embedded NATS JetStream started", "store", dir, "url", srv.ClientURL(), "credentials", creds)
	return natsTarget{url: srv.ClientURL(), opts: opts, srv: srv}, nil
}

// externalNATSOptions returns the options that authenticate to an external
// NATS and secure the connection, from the configuration.
func externalNATSOptions(n config.NATS) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, string(n.Password)))
	case n.NkeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(n.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
	case n.CredsFile != "":
		if _, err := os.Stat(n.CredsFile); err != nil {
			return nil, fmt.Errorf("nats.creds_file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(n.CredsFile))
	}
	if n.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLS.CAFile))
	}
	if n.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(n.TLS.CertFile, n.TLS.KeyFile))
	}
	return opts, nil
}
