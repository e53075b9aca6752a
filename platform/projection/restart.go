package projection

import "time"

// restarts is how long a runner or a reactor waits before leading again
// after its lead ended in an error: it doubles from restartMin up to
// restartMax while leads keep failing, and starts from restartMin again
// after a lead that held for healthyLead. Without that reset, a runner that
// failed a few times while a fresh cluster formed kept its grown delay, and
// the first error of a healthy lead stalled it for seconds (the node loss
// drill: an account registered just after start not visible in time).
type restarts struct{ next time.Duration }

const (
	restartMin  = 100 * time.Millisecond
	restartMax  = 10 * time.Second
	healthyLead = 30 * time.Second
)

// after is the wait after a lead that ran for ran.
func (r *restarts) after(ran time.Duration) time.Duration {
	if r.next == 0 || ran >= healthyLead {
		r.next = restartMin
	}
	d := r.next
	r.next = min(r.next*2, restartMax)
	return d
}

// reset makes the next wait the shortest (a rewind, not a failure).
func (r *restarts) reset() { r.next = restartMin }
