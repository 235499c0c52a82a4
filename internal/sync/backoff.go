package sync

import (
	"math/rand/v2"
	"time"
)

// Default retry bounds, used when Config leaves them zero.
const (
	// DefaultRetryMin is short because the commonest local failure (a put
	// racing the removal of its parent directory in the mirror) clears at
	// once.
	DefaultRetryMin = 100 * time.Millisecond
	// DefaultRetryMax caps the wait so that a backend back from an outage
	// is used again within half a minute.
	DefaultRetryMax = 30 * time.Second
)

// backoff is the wait before retry number attempt (1 for the first retry):
// doubling from floor, capped at ceiling. The wait is drawn from [d/2, d] so that
// many paths failing together (a backend outage) do not retry in lockstep.
func backoff(attempt int, floor, ceiling time.Duration) time.Duration {
	d := floor
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	if d > ceiling {
		d = ceiling
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
