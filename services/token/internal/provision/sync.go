package provision

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/homeserver"
)

// syncWorkers is how many users a sync reconciles at once.
const syncWorkers = 4

// maxSyncFailures is how many refusals a sync reports in detail.
const maxSyncFailures = 20

// SyncAll walks every user (accounts' ListUsers) and reconciles each: an
// active user is provisioned with everything Gatehouse knows of it and gets
// exactly the devices of its live sessions (sync_devices); a deactivated user
// is deactivated on the homeserver unless it already is. A user the homeserver
// refuses is counted and reported; a homeserver that does not answer stops
// the sync with KindUnavailable (it can simply be run again).
func (p *Provisioner) SyncAll(ctx context.Context) (*tokenv1.SyncHomeserverResponse, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex
		resp = &tokenv1.SyncHomeserverResponse{}
		wg   sync.WaitGroup
		work = make(chan string)
	)
	for range syncWorkers {
		wg.Go(func() {
			for id := range work {
				out, err := p.syncUser(ctx, id)
				mu.Lock()
				switch {
				case err == nil:
					resp.UsersProvisioned += out.provisioned
					resp.UsersCreated += out.created
					resp.UsersDeactivated += out.deactivated
					resp.Devices += out.devices
				case homeserver.IsPermanent(err):
					resp.UsersFailed++
					if len(resp.Failures) < maxSyncFailures {
						resp.Failures = append(resp.Failures, out.localpart+": "+err.Error())
					}
					p.logger.Error("homeserver refused a user during a sync", "audit", "homeserver_change_refused", "user_id", id, "err", err)
				default:
					cancel(err)
				}
				mu.Unlock()
			}
		})
	}
	listErr := p.listUsers(ctx, work)
	close(work)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		mu.Lock()
		done := resp.UsersProvisioned + resp.UsersDeactivated
		mu.Unlock()
		if homeserver.IsRetryable(cause) {
			return nil, errs.Wrap(errs.KindUnavailable, fmt.Sprintf(
				"The homeserver did not take a change, so the sync stopped after %d users; run it again once the homeserver is back (%v).", done, cause), cause)
		}
		return nil, errs.Wrap(errs.KindUnavailable, fmt.Sprintf("The sync stopped after %d users; run it again.", done), cause)
	}
	if listErr != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The users could not be listed.", listErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.logger.Info("homeserver sync done", "users_provisioned", resp.UsersProvisioned, "users_created", resp.UsersCreated,
		"users_deactivated", resp.UsersDeactivated, "devices", resp.Devices, "users_failed", resp.UsersFailed)
	return resp, nil
}

// listUsers sends the id of every user to work, page by page.
func (p *Provisioner) listUsers(ctx context.Context, work chan<- string) error {
	token := ""
	for {
		page, err := p.deps.Users.ListUsers(ctx, &accountsv1.ListUsersRequest{PageSize: 500, PageToken: token})
		if err != nil {
			return err
		}
		for _, u := range page.GetUsers() {
			select {
			case work <- u.GetId():
			case <-ctx.Done():
				return nil
			}
		}
		if token = page.GetNextPageToken(); token == "" {
			return nil
		}
	}
}

// syncOutcome is what reconciling one user did.
type syncOutcome struct {
	localpart                         string
	provisioned, created, deactivated int64
	devices                           int64
}

// syncUser reconciles one user from its own events and its live sessions.
func (p *Provisioner) syncUser(ctx context.Context, userID string) (syncOutcome, error) {
	if !ids.Valid(userID) {
		return syncOutcome{}, nil
	}
	st, err := p.userState(ctx, userID, math.MaxUint64)
	if err != nil || st.Username == "" {
		return syncOutcome{}, err
	}
	out := syncOutcome{localpart: st.Username}
	if st.Deactivated {
		u, err := p.hs.QueryUser(ctx, st.Username)
		switch {
		case homeserver.IsNotFound(err):
		case err != nil:
			return out, err
		case !u.IsDeactivated:
			if err := p.hs.DeleteUser(ctx, st.Username, st.Erase); err != nil && !homeserver.IsNotFound(err) {
				return out, err
			}
		}
		out.deactivated = 1
		return out, nil
	}
	created, err := p.hs.ProvisionUser(ctx, st.Full())
	if err != nil {
		return out, err
	}
	out.provisioned = 1
	if created {
		out.created = 1
	}
	devices, err := p.deps.Sessions.LiveDevices(ctx, userID)
	if err != nil {
		return out, err
	}
	if err := p.hs.SyncDevices(ctx, st.Username, devices); err != nil {
		return out, err
	}
	// A session that started or ended while sync_devices was on its way may
	// be missing from, or still in, the set just sent: read again and fix
	// those devices one by one.
	after, err := p.deps.Sessions.LiveDevices(ctx, userID)
	if err != nil {
		return out, err
	}
	for _, d := range after {
		if !slices.Contains(devices, d) {
			if err := p.hs.UpsertDevice(ctx, st.Username, d, ""); err != nil {
				return out, err
			}
		}
	}
	for _, d := range devices {
		if !slices.Contains(after, d) {
			if err := p.hs.DeleteDevice(ctx, st.Username, d); err != nil {
				return out, err
			}
		}
	}
	out.devices = int64(len(after))
	return out, nil
}
