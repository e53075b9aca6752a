package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// debianRoot is where Debian and Ubuntu install each PostgreSQL major version.
const debianRoot = "/usr/lib/postgresql"

// binaries are the PostgreSQL server programs a cluster runs.
type binaries struct {
	dir      string
	initdb   string
	postgres string
}

// findBinaries locates initdb and postgres: in the version directory matching
// an existing cluster's PG_VERSION, then `pg_config --bindir`, then the newest
// /usr/lib/postgresql/*/bin, then PATH.
func findBinaries(dataDir string) (binaries, error) {
	var dirs []string
	if v, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		dirs = append(dirs, filepath.Join(debianRoot, strings.TrimSpace(string(v)), "bin"))
	}
	if dir, ok := pgConfigBindir(); ok {
		dirs = append(dirs, dir)
	}
	dirs = append(dirs, versionDirs(debianRoot)...)
	for _, dir := range dirs {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err := errors.Join(err1, err2); err != nil {
		return binaries{}, fmt.Errorf("pgcluster: PostgreSQL server programs (initdb, postgres) not found in pg_config --bindir, %s/*/bin or PATH: install the postgresql package: %w", debianRoot, err)
	}
	return binaries{dir: filepath.Dir(initdb), initdb: initdb, postgres: postgres}, nil
}

// pgConfigBindir asks pg_config, if it is on PATH, where the programs are.
func pgConfigBindir() (string, bool) {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--bindir").Output()
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}

// versionDirs lists root/<version>/bin, newest version first.
func versionDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	type version struct {
		name  string
		parts []int
	}
	var versions []version
	for _, e := range entries {
		if parts, ok := parseVersion(e.Name()); ok {
			versions = append(versions, version{e.Name(), parts})
		}
	}
	slices.SortFunc(versions, func(a, b version) int { return slices.Compare(b.parts, a.parts) })
	dirs := make([]string, len(versions))
	for i, v := range versions {
		dirs[i] = filepath.Join(root, v.name, "bin")
	}
	return dirs
}

// parseVersion parses a major version directory name such as "15" or "9.6".
func parseVersion(name string) ([]int, bool) {
	var parts []int
	for _, s := range strings.Split(name, ".") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, false
		}
		parts = append(parts, n)
	}
	return parts, true
}

// binariesIn reports the programs in dir if both are there.
func binariesIn(dir string) (binaries, bool) {
	b := binaries{dir: dir, initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	for _, p := range []string{b.initdb, b.postgres} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return binaries{}, false
		}
	}
	return b, true
}
