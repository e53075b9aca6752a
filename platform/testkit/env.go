package testkit

import (
	"os"
	"strconv"
	"testing"
)

// Count is the positive whole number the environment variable name sets (a
// benchmark's size: GATEHOUSE_BENCH_SECONDS, …), def when it is unset; any
// other value fails the test.
func Count(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a whole number above 0", name, v)
	}
	return n
}
