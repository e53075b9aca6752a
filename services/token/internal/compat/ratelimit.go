package compat

import (
	"time"

	"gatehouse.dev/platform/ratelimit"
)

// The password-login limits, MAS's defaults (and the web sign-in's): per
// client address a burst of 3 then 3 a minute; per account a burst of 1800
// then 1800 an hour.
var (
	PerIP      = ratelimit.Rule{Name: "ip", Burst: 3, Per: time.Minute}
	PerAccount = ratelimit.Rule{Name: "account", Burst: 1800, Per: time.Hour}
)
