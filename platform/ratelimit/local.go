package ratelimit

import "time"

// takeLocal takes one token from every key's bucket in memory, or from none.
// A bucket's local count goes on from the last state seen in the store.
func (l *Limiter) takeLocal(now int64, keys []Key) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	var (
		wait    time.Duration
		refused []string
	)
	nexts := make([]int64, len(keys))
	for i, k := range keys {
		next, w := k.Rule.take(l.known[l.subject(k)].tat, now)
		if w > 0 {
			refused = append(refused, k.Rule.Name)
		}
		wait = max(wait, w)
		nexts[i] = next
	}
	if wait > 0 {
		return Decision{RetryAfter: wait, refusedBy: refused}
	}
	d := Decision{Allowed: true}
	for i, k := range keys {
		subject := l.subject(k)
		l.known[subject] = state{tat: nexts[i], seq: l.known[subject].seq}
		d.taken = append(d.taken, taken{key: k, local: true})
	}
	return d
}

// refundLocal gives a token back to a key's bucket in memory.
func (l *Limiter) refundLocal(k Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	subject := l.subject(k)
	if st, ok := l.known[subject]; ok {
		st.tat -= int64(k.Rule.Every)
		l.known[subject] = st
	}
}
