package password

import "fmt"

// Bounds on argon2id parameters. Verify rejects stored hashes outside them, so
// a crafted or corrupted hash cannot make one login allocate gigabytes or run
// for minutes.
const (
	// MaxMemoryKiB is the most memory a hash may ask for: 1 GiB.
	MaxMemoryKiB = 1 << 20
	// MaxIterations is the most passes over memory a hash may ask for.
	MaxIterations = 64
	// MaxParallelism is the most lanes a hash may ask for.
	MaxParallelism = 64
)

// Params are the argon2id cost parameters.
type Params struct {
	// MemoryKiB is the memory cost in KiB; at least 8 per lane.
	MemoryKiB uint32
	// Iterations is the number of passes over the memory.
	Iterations uint32
	// Parallelism is the number of lanes.
	Parallelism uint8
}

// DefaultParams returns OWASP's minimum recommendation for argon2id: 19 MiB of
// memory, 2 iterations, 1 lane.
func DefaultParams() Params {
	return Params{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}
}

// Validate reports whether the parameters are within the bounds Verify accepts
// and argon2id's own minimums.
func (p Params) Validate() error {
	switch {
	case p.Parallelism < 1 || p.Parallelism > MaxParallelism:
		return fmt.Errorf("argon2id parallelism %d outside 1..%d", p.Parallelism, MaxParallelism)
	case p.Iterations < 1 || p.Iterations > MaxIterations:
		return fmt.Errorf("argon2id iterations %d outside 1..%d", p.Iterations, MaxIterations)
	case p.MemoryKiB < 8*uint32(p.Parallelism) || p.MemoryKiB > MaxMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d",
			p.MemoryKiB, 8*uint32(p.Parallelism), MaxMemoryKiB)
	}
	return nil
}
