package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
)

// Reads that must see every acknowledged event.
//
// Load reads an aggregate with direct gets, which any replica of a
// replicated stream answers. JetStream acknowledges an append once a
// majority of the replicas stored it, so the third replica may not have it
// yet: a direct get it answers misses the newest events, and an aggregate
// created a moment ago on another process reads as missing (an
// authorization request just recorded by one authorize replica was "not
// found" by the other, found by the node loss drill, e2e/node_loss_test.go).
// The stream's leader has every acknowledged event: Load completes the
// history from it, one request when nothing is missing.

// apiMsgGet is the stream leader's message API (not a direct get).
const apiMsgGet = "$JS.API.STREAM.MSG.GET."

// replicated reports whether the stream has more than one replica.
func (l *Log) replicated(ctx context.Context) bool {
	st, err := l.handle(ctx)
	return err == nil && st.CachedInfo().Config.Replicas > 1
}

// leaderRecords reads the events on subject from sequence from onwards
// from the stream's leader, and the sequence of the last message there (an
// expiry marker's included: it is the aggregate's version).
func (l *Log) leaderRecords(ctx context.Context, subject string, from uint64) (out []Record, last uint64, err error) {
	for {
		req, _ := json.Marshal(map[string]any{"seq": from, "next_by_subj": subject})
		msg, err := l.js.Conn().RequestWithContext(ctx, apiMsgGet+l.stream, req)
		if err != nil {
			return nil, 0, fmt.Errorf("eventlog: load %s from the stream leader: %w", subject, err)
		}
		var resp struct {
			Error *struct {
				Code        int    `json:"code"`
				Description string `json:"description"`
			} `json:"error"`
			Message *struct {
				Subject string `json:"subject"`
				Seq     uint64 `json:"seq"`
				Data    []byte `json:"data"`
			} `json:"message"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return nil, 0, fmt.Errorf("eventlog: load %s from the stream leader: %w", subject, err)
		}
		switch {
		case resp.Error != nil && resp.Error.Code == 404:
			return out, last, nil // nothing newer
		case resp.Error != nil:
			return nil, 0, fmt.Errorf("eventlog: load %s from the stream leader: %s", subject, resp.Error.Description)
		case resp.Message == nil:
			return out, last, nil
		}
		last, from = resp.Message.Seq, resp.Message.Seq+1
		if len(resp.Message.Data) == 0 {
			continue // an expiry marker (isMarker): no event, but a version
		}
		rec, err := Decode(resp.Message.Seq, resp.Message.Subject, resp.Message.Data)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, rec)
	}
}
