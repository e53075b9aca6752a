package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The house rules for imports: the platform knows no service, proto knows
// nothing of ours, and services meet only through proto (gRPC and events),
// never by importing each other's packages.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}",
		"gatehouse.dev/proto/...", "gatehouse.dev/platform/...",
		"gatehouse.dev/services/accounts/...", "gatehouse.dev/services/authorize/...", "gatehouse.dev/services/token/...",
		"gatehouse.dev/services/notify/...", "gatehouse.dev/services/web/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	service := func(pkg string) string {
		rest, ok := strings.CutPrefix(pkg, "gatehouse.dev/services/")
		if !ok {
			return ""
		}
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		checked++
		for _, imp := range imports {
			if !strings.HasPrefix(imp, "gatehouse.dev/") {
				continue
			}
			switch {
			case strings.HasPrefix(pkg, "gatehouse.dev/proto/") && !strings.HasPrefix(imp, "gatehouse.dev/proto/"):
				t.Errorf("%s imports %s: proto depends on nothing of ours", pkg, imp)
			case strings.HasPrefix(pkg, "gatehouse.dev/platform") && service(imp) != "":
				t.Errorf("%s imports %s: the platform knows no service", pkg, imp)
			case service(pkg) != "" && service(imp) != "" && service(imp) != service(pkg):
				t.Errorf("%s imports %s: services meet only through gRPC and events", pkg, imp)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d packages; go list output:\n%s", checked, out)
	}
}
