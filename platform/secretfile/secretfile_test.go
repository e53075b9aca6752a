package secretfile

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret")
	first, err := LoadOrCreate(path, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 32 {
		t.Fatalf("secret has %d bytes, want 32", len(first))
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %v, want 0600", perm)
	}
	again, err := LoadOrCreate(path, 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Error("a second call made a new secret")
	}
}

func TestLoadOrCreateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			b, err := LoadOrCreate(path, 32)
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		})
	}
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("racing creators disagree: %x vs %x", got[i], got[0])
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"readable by others", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", 0o644},
		{"not base64url", "not base64 at all!!", 0o600},
		{"too short", "c2hvcnQ", 0o600},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(path); err == nil {
				t.Fatal("Load accepted it")
			}
		})
	}
	if _, err := LoadOrCreate(filepath.Join(dir, "x"), 8); err == nil {
		t.Error("LoadOrCreate accepted an 8-byte size")
	}
}
