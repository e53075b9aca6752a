package projection

import (
	"context"
	"errors"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
)

// Admin serves gatehouse.projections.v1.ProjectionsService for the sets a
// process hosts. Projections are named "<service>.<projection>", for example
// "accounts.users".
type Admin struct {
	projectionsv1.UnimplementedProjectionsServiceServer
	sets map[string]*Set
}

// NewAdmin returns an Admin over sets keyed by service name.
func NewAdmin(sets map[string]*Set) *Admin {
	return &Admin{sets: sets}
}

// ListProjections names every hosted projection and reactor with its
// checkpoint, the stream's head, its version and any build under way.
func (a *Admin) ListProjections(ctx context.Context, _ *projectionsv1.ListProjectionsRequest) (*projectionsv1.ListProjectionsResponse, error) {
	services := make([]string, 0, len(a.sets))
	for svc := range a.sets {
		services = append(services, svc)
	}
	sort.Strings(services)
	resp := &projectionsv1.ListProjectionsResponse{}
	for _, svc := range services {
		set := a.sets[svc]
		for _, name := range set.Names() {
			p, err := describe(ctx, set, svc, name)
			if err != nil {
				return nil, err
			}
			resp.Projections = append(resp.Projections, p)
		}
	}
	return resp, nil
}

// RebuildProjection rebuilds one projection beside its live tables (or
// replays a reactor), waiting for the swap unless asked to run in the background.
func (a *Admin) RebuildProjection(ctx context.Context, req *projectionsv1.RebuildProjectionRequest) (*projectionsv1.RebuildProjectionResponse, error) {
	svc, name, ok := strings.Cut(req.GetName(), ".")
	set := a.sets[svc]
	if !ok || set == nil {
		return nil, errs.NotFound("no projection named " + quote(req.GetName()) + "; names look like accounts.users (see ListProjections)")
	}
	if req.GetMaxEventsPerSecond() < 0 {
		return nil, errs.InvalidField("max_events_per_second", "max_events_per_second cannot be negative")
	}
	_, target, err := set.StartRebuild(ctx, name, RebuildOptions{MaxRate: req.GetMaxEventsPerSecond()})
	if errors.Is(err, ErrUnknown) {
		return nil, errs.NotFound("no projection named " + quote(req.GetName()))
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "could not start the rebuild of "+req.GetName(), err)
	}
	if !req.GetBackground() {
		if _, err := set.WaitRebuilt(ctx, name, target); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "rebuild of "+req.GetName()+" did not finish; it goes on (see projections list)", err)
		}
	}
	p, err := describe(ctx, set, svc, name)
	if err != nil {
		return nil, err
	}
	return &projectionsv1.RebuildProjectionResponse{Projection: p, Target: target}, nil
}

// describe is the API's view of one member.
func describe(ctx context.Context, set *Set, svc, name string) (*projectionsv1.Projection, error) {
	full := svc + "." + name
	st, err := set.Status(ctx, name)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "could not read the state of "+full, err)
	}
	head, err := set.Head(ctx, name)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "could not read the stream of "+full, err)
	}
	p := &projectionsv1.Projection{Name: full, Stream: set.StreamOf(name), Checkpoint: st.Checkpoint, Kind: st.Kind,
		Version: int32(st.Version), State: "live", Head: head}
	if b := st.Build; b != nil {
		p.State = "building"
		p.Build = &projectionsv1.Build{Version: int32(b.Version), Reason: b.Reason, Position: b.Position, Target: b.Target,
			EventsPerSecond: b.Rate, MaxEventsPerSecond: b.MaxRate, StartedAt: timestamppb.New(b.StartedAt), Schema: b.Schema}
	}
	return p, nil
}

func quote(s string) string { return "\"" + s + "\"" }
