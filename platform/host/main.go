package host

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/telemetry"
)

// Build constructs the services a process hosts on its runtime.
type Build func(ctx context.Context, rt *Runtime) ([]Service, error)

// Main is the whole life of a service binary: flags, configuration, runtime,
// serving until SIGINT or SIGTERM, and an orderly shutdown. It returns the
// process exit code.
func Main(name string, args []string, stderr io.Writer, build Build) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("GATEHOUSE_CONFIG"), "path to the YAML configuration file (env GATEHOUSE_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	environ := os.Environ()
	if slices.Contains(config.AllServices(), name) {
		// A service's own binary runs that service alone, whatever the
		// configuration shared with the other services says: it gets only
		// the secrets that service needs (the web service: no keyring).
		environ = append(environ, "GATEHOUSE_SERVICES="+name)
	}
	cfg, err := config.Load(*path, environ)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n%v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg, name, stderr, build); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// Run starts the runtime, builds the services and serves them until ctx ends.
func Run(ctx context.Context, cfg config.Config, name string, logOut io.Writer, build Build) error {
	logger, err := telemetry.NewLogger(cfg.Log.Level, cfg.Log.Format, logOut)
	if err != nil {
		return err
	}
	logger = logger.With("process", name)
	slog.SetDefault(logger) // libraries that log through slog's default use the same handler
	logger.Info("starting", "config", cfg)
	rt, err := Start(ctx, cfg, name, logger)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.Close(closeCtx); err != nil {
			logger.Error("shutdown", "err", err)
		}
		logger.Info("stopped")
	}()
	services, err := build(ctx, rt)
	if err != nil {
		return err
	}
	return rt.Serve(ctx, services...)
}
