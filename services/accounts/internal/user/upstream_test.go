package user

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

var sealedSubject = &eventsv1.SealedSecret{KeyId: "0123456789abcdef", Ciphertext: []byte("sealed subject")}

// linked is alice with links to google and to an imported Synapse provider.
func linked(password bool) State {
	return with(alice(), func(s *State) {
		s.Links = []Link{{ID: "l1", Provider: "google", ClaimKey: "k1"}, {ID: "l2", Provider: "synapse:oidc-gitlab", ClaimKey: "k2"}}
		if !password {
			s.Password = Password{}
		}
	})
}

func TestLinkDecisions(t *testing.T) {
	configured := func(p string) bool { return p == "google" || p == "github" }
	link := LinkCommand{LinkID: "l3", Provider: "github", ClaimKey: "k3", SealedSubject: sealedSubject, Source: LinkExisting}
	tests := []struct {
		name     string
		decide   func() ([]proto.Message, error)
		want     []proto.Message
		wantKind errs.Kind
		wantErr  bool
	}{
		{"link", func() ([]proto.Message, error) { return LinkUpstream(alice(), link) },
			[]proto.Message{&eventsv1.UpstreamLinked{UserId: "u1", LinkId: "l3", Provider: "github", ClaimKey: "k3", SealedSubject: sealedSubject, Source: "link"}}, 0, false},
		{"link the same identity again", func() ([]proto.Message, error) {
			return LinkUpstream(linked(true), LinkCommand{LinkID: "l9", Provider: "google", ClaimKey: "k1", SealedSubject: sealedSubject, Source: LinkAdmin})
		}, nil, 0, false},
		{"link a deactivated user", func() ([]proto.Message, error) {
			return LinkUpstream(with(alice(), func(s *State) { s.Deactivated = true }), link)
		}, nil, errs.KindFailedPrecondition, true},
		{"link nobody", func() ([]proto.Message, error) { return LinkUpstream(State{}, link) }, nil, errs.KindNotFound, true},
		{"link without a subject", func() ([]proto.Message, error) {
			c := link
			c.SealedSubject = nil
			return LinkUpstream(alice(), c)
		}, nil, errs.KindInternal, true},
		{"unlink with a password", func() ([]proto.Message, error) { return UnlinkUpstream(linked(true), "l1", configured) },
			[]proto.Message{&eventsv1.UpstreamUnlinked{UserId: "u1", LinkId: "l1", Provider: "google", ClaimKey: "k1"}}, 0, false},
		{"unlink a link the user does not have", func() ([]proto.Message, error) { return UnlinkUpstream(linked(true), "nope", configured) }, nil, 0, false},
		// Without a password, the last usable link is the only way in: the
		// imported link's provider is not configured, so it does not count.
		{"unlink the last way in", func() ([]proto.Message, error) { return UnlinkUpstream(linked(false), "l1", configured) },
			nil, errs.KindFailedPrecondition, true},
		{"unlink an unusable link without a password", func() ([]proto.Message, error) { return UnlinkUpstream(linked(false), "l2", configured) },
			[]proto.Message{&eventsv1.UpstreamUnlinked{UserId: "u1", LinkId: "l2", Provider: "synapse:oidc-gitlab", ClaimKey: "k2"}}, 0, false},
		{"unlink one of two usable links without a password", func() ([]proto.Message, error) {
			return UnlinkUpstream(linked(false), "l1", func(string) bool { return true })
		}, []proto.Message{&eventsv1.UpstreamUnlinked{UserId: "u1", LinkId: "l1", Provider: "google", ClaimKey: "k1"}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decide()
			if tt.wantErr {
				if err == nil || errs.KindOf(err) != tt.wantKind {
					t.Fatalf("error %v, want kind %v", err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("decided %v, want %v", got, tt.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("event %d: %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestLinksFoldAndClaims(t *testing.T) {
	st := Fold([]eventlog.Record{
		registered(1, t0),
		record(2, t1, &eventsv1.UpstreamLinked{UserId: "u1", LinkId: "l1", Provider: "google", ClaimKey: "k1"}),
		record(3, t1, &eventsv1.UpstreamLinked{UserId: "u1", LinkId: "l1", Provider: "google", ClaimKey: "k1"}), // delivered again
		record(4, t2, &eventsv1.UpstreamLinked{UserId: "u1", LinkId: "l2", Provider: "github", ClaimKey: "k2"}),
		record(5, t2, &eventsv1.UpstreamUnlinked{UserId: "u1", LinkId: "l1", Provider: "google", ClaimKey: "k1"}),
	})
	if len(st.Links) != 1 || st.Links[0].ID != "l2" || !st.HasLinkClaim("k2") || st.HasLinkClaim("k1") || st.Version != 5 {
		t.Errorf("links %+v (version %d)", st.Links, st.Version)
	}
	c := FoldLinkClaim([]eventlog.Record{
		record(7, t0, &eventsv1.UpstreamLinkReserved{Provider: "google", UserId: "u1", LinkId: "l1"}),
		record(9, t1, &eventsv1.UpstreamLinkReleased{Provider: "google", UserId: "u1", LinkId: "l1"}),
	})
	if c.Holder != "" || c.Version != 9 {
		t.Errorf("released claim %+v", c)
	}
	c = FoldLinkClaim([]eventlog.Record{record(7, t0, &eventsv1.UpstreamLinkReserved{Provider: "google", UserId: "u1", LinkId: "l1"})})
	if c.Holder != "u1" || c.LinkID != "l1" || c.Version != 7 {
		t.Errorf("held claim %+v", c)
	}
}
