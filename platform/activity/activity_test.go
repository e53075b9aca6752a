package activity

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNotesKeepTheLatestUseAndAnAddress(t *testing.T) {
	r := New()
	t0 := time.Unix(1000, 0)
	r.Touch("a", "u1", "192.0.2.1", t0)
	r.Touch("a", "", "", t0.Add(time.Minute))             // later, no address or owner: keeps both
	r.Touch("a", "u1", "192.0.2.9", t0.Add(-time.Minute)) // earlier: ignored but its address is not needed
	r.Touch("", "u1", "x", t0)                            // no id: ignored
	n, ok := r.Last("a")
	if !ok || !n.At.Equal(t0.Add(time.Minute)) || n.IP != "192.0.2.1" || n.Owner != "u1" {
		t.Fatalf("note %+v, %v", n, ok)
	}
	if _, ok := r.Last(""); ok {
		t.Fatal("an empty id was noted")
	}
}

func TestFlushChunksAndKeepsWhatFailed(t *testing.T) {
	r := New()
	t0 := time.Unix(1000, 0)
	for _, id := range []string{"c", "a", "d", "b", "e"} {
		r.Touch(id, "", "", t0)
	}
	var chunks [][]string
	fail := errors.New("stream unavailable")
	err := r.Flush(context.Background(), 2, func(_ context.Context, ids []string, _ map[string]Note) error {
		if len(chunks) == 1 {
			return fail
		}
		chunks = append(chunks, append([]string(nil), ids...))
		return nil
	})
	if !errors.Is(err, fail) || len(chunks) != 1 || chunks[0][0] != "a" || chunks[0][1] != "b" {
		t.Fatalf("chunks %v, err %v", chunks, err)
	}
	for _, id := range []string{"c", "d", "e"} {
		if _, ok := r.Last(id); !ok {
			t.Errorf("%s was lost after a failed write", id)
		}
	}
	if _, ok := r.Last("a"); ok {
		t.Error("a written note was kept")
	}
	written := 0
	if err := r.Flush(context.Background(), 10, func(_ context.Context, ids []string, _ map[string]Note) error {
		written += len(ids)
		return nil
	}); err != nil || written != 3 {
		t.Fatalf("second flush wrote %d, %v", written, err)
	}
}

func TestRunFlushesOnceMoreAtTheEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	flushes := make(chan bool, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, time.Hour, time.Second, func(fctx context.Context) { flushes <- fctx.Err() == nil })
	}()
	cancel()
	<-done
	if len(flushes) != 1 || !<-flushes {
		t.Fatal("no final flush with a live context")
	}
}
