package projection

import "errors"

// ErrUnknown reports a projection name that is not registered.
var ErrUnknown = errors.New("unknown projection")
