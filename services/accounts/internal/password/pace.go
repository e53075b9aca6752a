package password

import (
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Verification time does not reveal a user's scheme: bcrypt at Synapse's
// cost 12 takes several times as long as argon2id with the default
// parameters, so without care the time a sign-in takes would tell an
// attacker which users were imported and never signed in since (and the
// unknown-user dummy, argon2id, would tell unknown users from imported
// ones). Every verification — a real one, the dummy, a malformed hash — is
// padded to the cost of the slowest scheme seen: the pacer keeps the
// running median of the last paceWindow verifications of each scheme and
// parameters (argon2id m,t,p; bcrypt cost), and after a verification sleeps
// until the largest median has passed. Medians follow the machine's load,
// so a loaded server pads to what each scheme costs now. Calibrate measures
// the schemes at start, before the first sign-in of an imported user.

// paceWindow is how many recent verifications of a scheme its median is of.
const paceWindow = 15

// pacer pads verifications to the slowest scheme's recent median.
type pacer struct {
	now   func() time.Time
	sleep func(time.Duration)
	mu    sync.Mutex
	costs map[string]*costWindow
}

// newPacer returns a pacer on the real clock.
func newPacer() *pacer {
	return &pacer{now: time.Now, sleep: time.Sleep, costs: map[string]*costWindow{}}
}

// costWindow holds the last paceWindow durations of one scheme.
type costWindow struct {
	samples []time.Duration
	next    int
}

// add records one duration, replacing the oldest once full.
func (w *costWindow) add(d time.Duration) {
	if len(w.samples) < paceWindow {
		w.samples = append(w.samples, d)
		return
	}
	w.samples[w.next] = d
	w.next = (w.next + 1) % paceWindow
}

// median is the window's median duration.
func (w *costWindow) median() time.Duration {
	s := slices.Clone(w.samples)
	slices.Sort(s)
	return s[len(s)/2]
}

// finish ends a verification of scheme (its cost key; "" records nothing:
// a hash that could not be verified) begun at started: it records how long
// it took and sleeps until the slowest scheme's median has passed. It
// returns how long it slept.
func (p *pacer) finish(scheme string, started time.Time) time.Duration {
	elapsed := p.now().Sub(started)
	p.mu.Lock()
	if scheme != "" {
		w := p.costs[scheme]
		if w == nil {
			w = &costWindow{}
			p.costs[scheme] = w
		}
		w.add(elapsed)
	}
	var target time.Duration
	for _, w := range p.costs {
		target = max(target, w.median())
	}
	p.mu.Unlock()
	wait := target - elapsed
	if wait <= 0 {
		return 0
	}
	p.sleep(wait)
	return wait
}

// target is the duration every verification is padded to now.
func (p *pacer) target() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var target time.Duration
	for _, w := range p.costs {
		target = max(target, w.median())
	}
	return target
}

// argon2idScheme is the cost key of argon2id hashes with p.
func argon2idScheme(p Params) string {
	return fmt.Sprintf("argon2id m=%d,t=%d,p=%d", p.MemoryKiB, p.Iterations, p.Parallelism)
}

// bcryptScheme is the cost key of bcrypt hashes of cost.
func bcryptScheme(cost int) string { return fmt.Sprintf("bcrypt cost %d", cost) }

// SynapseBcryptCost is the bcrypt cost Synapse hashes with by default
// (password_config.bcrypt_rounds).
const SynapseBcryptCost = 12

// Calibrate measures what verifying costs with this Hasher's argon2id
// parameters and with bcrypt at each of bcryptCosts (e.g.
// SynapseBcryptCost, when users were imported from Synapse), so that the
// first verifications are padded already. It takes about as long as one
// verification of each, twice for bcrypt (a hash to verify is made first).
func (h *Hasher) Calibrate(bcryptCosts ...int) error {
	h.VerifyDummy("calibration")
	for _, cost := range bcryptCosts {
		if cost < bcrypt.MinCost || cost > MaxBcryptCost {
			return fmt.Errorf("password: calibrate: bcrypt cost %d outside %d..%d", cost, bcrypt.MinCost, MaxBcryptCost)
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
		if err != nil {
			return fmt.Errorf("password: calibrate: %w", err)
		}
		if _, _, err := h.Verify(string(hash), "calibration"); err != nil {
			return fmt.Errorf("password: calibrate: %w", err)
		}
	}
	return nil
}

// PaddedTo is the duration every verification is padded to now: the median
// cost of the slowest scheme verified recently.
func (h *Hasher) PaddedTo() time.Duration { return h.pace.target() }
