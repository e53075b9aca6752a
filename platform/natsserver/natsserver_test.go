package natsserver_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"gatehouse.dev/platform/natsserver"
)

// The embedded server admits only clients with its credentials.
func TestCredentialsRequired(t *testing.T) {
	gatehouse, _ := nkeys.CreateUser()
	gatehousePub, _ := gatehouse.PublicKey()
	stranger, _ := nkeys.CreateUser()
	strangerPub, _ := stranger.PublicKey()

	tests := []struct {
		name   string
		server natsserver.Options
		admit  []nats.Option
		refuse map[string][]nats.Option
	}{
		{
			name:   "nkey",
			server: natsserver.Options{Nkey: gatehousePub},
			admit:  []nats.Option{nats.Nkey(gatehousePub, gatehouse.Sign)},
			refuse: map[string][]nats.Option{
				"no credentials":      nil,
				"another nkey":        {nats.Nkey(strangerPub, stranger.Sign)},
				"its key, not signed": {nats.Nkey(gatehousePub, stranger.Sign)},
				"a password":          {nats.UserInfo("gatehouse", "guess")},
			},
		},
		{
			name:   "user and password",
			server: natsserver.Options{User: "gatehouse", Password: "s3cret-nats-password"},
			admit:  []nats.Option{nats.UserInfo("gatehouse", "s3cret-nats-password")},
			refuse: map[string][]nats.Option{
				"no credentials": nil,
				"wrong password": {nats.UserInfo("gatehouse", "s3cret-nats-passwore")},
				"other user":     {nats.UserInfo("admin", "s3cret-nats-password")},
				"a token":        {nats.Token("s3cret-nats-password")},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.server
			opts.StoreDir = t.TempDir()
			srv, err := natsserver.Start(opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)
			nc, err := nats.Connect(srv.ClientURL(), tt.admit...)
			if err != nil {
				t.Fatalf("Gatehouse's credentials refused: %v", err)
			}
			if _, err := nc.JetStream(); err != nil {
				t.Fatal(err)
			}
			nc.Close()
			for what, o := range tt.refuse {
				nc, err := nats.Connect(srv.ClientURL(), append(o, nats.NoReconnect())...)
				if err == nil {
					nc.Close()
					t.Errorf("%s: connected", what)
					continue
				}
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("%s: %v, want an authorization violation", what, err)
				}
			}
		})
	}
}

func TestStartRefusesAnOpenServer(t *testing.T) {
	for name, opts := range map[string]natsserver.Options{
		"nothing":          {},
		"user alone":       {User: "gatehouse"},
		"password alone":   {Password: "pw"},
		"nkey and user":    {Nkey: "UA", User: "u", Password: "p"},
		"not a public key": {Nkey: "SUAM3PGEXRXOHWTZW6KYNBHIBWWBIWUZDWUMUX6RZWE4GNIMQYP6LQH7QQ"},
	} {
		opts.StoreDir = t.TempDir()
		if srv, err := natsserver.Start(opts); err == nil {
			srv.Shutdown()
			t.Errorf("%s: started", name)
		}
	}
}

// The server listens on loopback unless told otherwise.
func TestLoopbackByDefault(t *testing.T) {
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if got := srv.ClientURL(); len(got) < 17 || got[:17] != "nats://127.0.0.1:" {
		t.Fatalf("ClientURL = %s", got)
	}
}
