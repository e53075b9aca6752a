package projection

import (
	"context"
	"errors"
	"sort"
	"strings"

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

// ListProjections names every hosted projection and reactor with its checkpoint.
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
			cp, err := set.Checkpoint(ctx, name)
			if err != nil {
				return nil, errs.Wrap(errs.KindUnavailable, "could not read the checkpoint of "+svc+"."+name, err)
			}
			resp.Projections = append(resp.Projections, &projectionsv1.Projection{Name: svc + "." + name, Stream: set.StreamOf(name), Checkpoint: cp, Kind: set.KindOf(name)})
		}
	}
	return resp, nil
}

// RebuildProjection replays one projection (or reactor) from the start of its stream.
func (a *Admin) RebuildProjection(ctx context.Context, req *projectionsv1.RebuildProjectionRequest) (*projectionsv1.RebuildProjectionResponse, error) {
	svc, name, ok := strings.Cut(req.GetName(), ".")
	set := a.sets[svc]
	if !ok || set == nil {
		return nil, errs.NotFound("no projection named " + quote(req.GetName()) + "; names look like accounts.users (see ListProjections)")
	}
	cp, err := set.Rebuild(ctx, name)
	if errors.Is(err, ErrUnknown) {
		return nil, errs.NotFound("no projection named " + quote(req.GetName()))
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "rebuild of "+req.GetName()+" did not finish", err)
	}
	return &projectionsv1.RebuildProjectionResponse{Projection: &projectionsv1.Projection{Name: req.GetName(), Stream: set.StreamOf(name), Checkpoint: cp, Kind: set.KindOf(name)}}, nil
}

func quote(s string) string { return "\"" + s + "\"" }
