package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"gatehouse.dev/migrate/synapse"
	"gatehouse.dev/platform/config"
)

// migrateCommand runs `gatehouse migrate <source> ...`.
func migrateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return finish(stderr, "migrate", fmt.Errorf("%w: migrate needs a source: synapse", errUsage))
	}
	switch args[0] {
	case "synapse":
		return migrateSynapse(ctx, args[1:], stdout, stderr)
	default:
		return finish(stderr, "migrate", fmt.Errorf("%w: unknown migration source %q (only synapse)", errUsage, args[0]))
	}
}

// migrateSynapse checks a Synapse homeserver for migration and prints the
// report; its exit code is the report's (0, 10 errors, 11 warnings), or 1
// when the check itself fails, 2 for a wrong command line.
func migrateSynapse(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const cmd = "migrate synapse"
	a := newAdmin(cmd, nil, stdout, stderr)
	dbURL := a.fs.String("synapse-database", "", "the Synapse PostgreSQL database (postgres://…); default: from --synapse-config")
	hsPath := a.fs.String("synapse-config", "", "Synapse's homeserver.yaml")
	check := a.fs.Bool("check", false, "check the homeserver and report, changing nothing")
	dryRun := a.fs.Bool("dry-run", false, "not available in this build")
	format := a.fs.String("format", "auto", "report format: text, json (JSON lines) or auto (text on a terminal, else json)")
	ignoreProviders := a.fs.Bool("ignore-missing-auth-providers", false,
		"report SSO links to providers Gatehouse has no upstream provider for as warnings, not errors")
	if err := a.parse(args, 0); err != nil {
		return finish(stderr, cmd, err)
	}
	if !*check || *dryRun {
		return finish(stderr, cmd, fmt.Errorf("%w: only --check is available in this build; the import itself (and --dry-run) comes in a later version", errUsage))
	}
	if *format != "auto" && *format != "text" && *format != "json" {
		return finish(stderr, cmd, fmt.Errorf("%w: --format must be text, json or auto", errUsage))
	}
	cfg, err := config.Load(*a.configPath, os.Environ())
	if err != nil {
		return finish(stderr, cmd, err)
	}
	var hs *synapse.Homeserver
	if *hsPath != "" {
		if hs, err = synapse.ReadHomeserver(*hsPath); err != nil {
			return finish(stderr, cmd, err)
		}
	}
	url := *dbURL
	if url == "" && hs != nil {
		var ignored []string
		if url, ignored, err = hs.DatabaseURL(); err != nil {
			return finish(stderr, cmd, err)
		}
		if len(ignored) > 0 {
			fmt.Fprintf(stderr, "gatehouse %s: database arguments not used: %v\n", cmd, ignored)
		}
	}
	if url == "" {
		return finish(stderr, cmd, fmt.Errorf("%w: give --synapse-database, or --synapse-config with a database section", errUsage))
	}
	// SSO links resolve to the upstream providers naming their auth_provider
	// (synapse_idp_id).
	var providers []string
	for _, p := range cfg.Upstream.Providers {
		if p.SynapseIdpID != "" {
			providers = append(providers, p.SynapseIdpID)
		}
	}
	report, err := synapse.RunCheck(ctx, url, synapse.ModeCheck, synapse.CheckInput{
		ServerName:             cfg.Matrix.ServerName,
		Homeserver:             hs,
		IgnoreMissingProviders: *ignoreProviders,
		Pepper:                 string(cfg.Passwords.BcryptPepper),
		Providers:              providers,
		// UsernamesExist stays empty in this build: the clash check over gRPC
		// comes with the import.
	})
	if err != nil {
		return finish(stderr, cmd, err)
	}
	if *format == "text" || (*format == "auto" && isTerminal(stdout)) {
		err = report.WriteText(stdout)
	} else {
		err = report.WriteJSON(stdout)
	}
	if err != nil {
		return finish(stderr, cmd, err)
	}
	return report.ExitCode()
}

// generateFromSynapse prints a configuration derived from Synapse's
// homeserver.yaml at path.
func generateFromSynapse(path string, stdout, stderr io.Writer) error {
	hs, err := synapse.ReadHomeserver(path)
	if err != nil {
		return err
	}
	d, err := synapse.DeriveConfig(hs, config.Default())
	if err != nil {
		return err
	}
	out, err := d.YAML(path)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "gatehouse config generate: derived from %s: %d setting(s) chosen for you, %d not carried over, %d upstream provider(s), %d left as draft(s) to fix: see the end of the file\n",
		path, len(d.Chosen), len(d.NotCarried), len(d.Config.Upstream.Providers), len(d.Drafts))
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
