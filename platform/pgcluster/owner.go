package pgcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// owner is the unprivileged user a root process runs PostgreSQL as.
type owner struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups
}

// clusterOwner returns the user to run PostgreSQL as when this process is
// root: "postgres" if it exists, else "nobody". It returns nil when the
// process is not root, meaning PostgreSQL runs as the current user.
func clusterOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return newOwner(u)
	}
	return nil, fmt.Errorf("pgcluster: running as root, and PostgreSQL refuses to: found no unprivileged user to run it as: %v", errs)
}

// newOwner converts a looked-up user.
func newOwner(u *user.User) (*owner, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	o := &owner{name: u.Username, uid: uint32(uid), gid: uint32(gid), groups: []uint32{}}
	ids, _ := u.GroupIds() // best effort: the primary group is enough to run
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(g) != o.gid {
			o.groups = append(o.groups, uint32(g))
		}
	}
	return o, nil
}

// credential returns the credential to run children with; nil (run as
// ourselves) for a nil owner.
func (o *owner) credential() *syscall.Credential {
	if o == nil {
		return nil
	}
	return &syscall.Credential{Uid: o.uid, Gid: o.gid, Groups: o.groups}
}

// chown gives dir itself and everything under data and run to the owner.
// Files that vanish during the walk are skipped: a server left running by a
// process that died may still be shutting down and removing its pid file.
func (o *owner) chown(dir, data, run string) error {
	if err := o.lchown(dir); err != nil {
		return err
	}
	for _, root := range []string{data, run} {
		err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := o.lchown(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("pgcluster: hand %s to user %s: %w", root, o.name, err)
		}
	}
	return nil
}

// lchown changes path's ownership unless it is already right.
func (o *owner) lchown(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("pgcluster: chown: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == o.uid && st.Gid == o.gid {
		return nil
	}
	if err := os.Lchown(path, int(o.uid), int(o.gid)); err != nil {
		return fmt.Errorf("pgcluster: chown: %w", err)
	}
	return nil
}

// checkTraversable makes sure the owner can reach dir: every ancestor must
// grant it search (x) permission.
func checkTraversable(dir string, o *owner) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: check access to %s: %w", p, err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !o.canSearch(fi.Mode(), st.Uid, st.Gid) {
			return fmt.Errorf("pgcluster: directory %s (mode %v) is not traversable by user %s (uid %d), which PostgreSQL runs as because it refuses to run as root: allow it (chmod o+x %s) or choose a Dir elsewhere", p, fi.Mode().Perm(), o.name, o.uid, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// canSearch applies the permission bits of a directory with the given
// ownership as the kernel would for the owner (ignoring ACLs).
func (o *owner) canSearch(mode fs.FileMode, uid, gid uint32) bool {
	switch {
	case uid == o.uid:
		return mode&0o100 != 0
	case gid == o.gid || slices.Contains(o.groups, gid):
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}
