package token

import (
	"testing"

	"gatehouse.dev/platform/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }
