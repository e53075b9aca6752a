package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"gatehouse.dev/migrate/synapse"
	"gatehouse.dev/platform/config"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
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

// migrateSynapse checks a Synapse homeserver for migration and, unless
// --check, imports it into the running Gatehouse (--dry-run: the services
// check every record and write nothing). Exit codes: 0 done (or, --check,
// ok), 10 the check found errors (nothing imported), 11 (--check) warnings,
// 1 when the check or the import fails, 2 for a wrong command line.
func migrateSynapse(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const cmd = "migrate synapse"
	a := newAdmin(cmd, nil, stdout, stderr)
	dbURL := a.fs.String("synapse-database", "", "the Synapse PostgreSQL database (postgres://…); default: from --synapse-config")
	hsPath := a.fs.String("synapse-config", "", "Synapse's homeserver.yaml")
	check := a.fs.Bool("check", false, "check the homeserver and report, changing nothing")
	dryRun := a.fs.Bool("dry-run", false, "check, then read everything and have Gatehouse check every record, writing nothing")
	format := a.fs.String("format", "auto", "report and progress format: text, json (JSON lines) or auto (text on a terminal, else json)")
	batch := a.fs.Int("batch", synapse.DefaultImportBatch, "records per call to Gatehouse")
	workers := a.fs.Int("workers", synapse.DefaultImportWorkers, "calls to Gatehouse under way at once, for users and for sessions each")
	every := a.fs.Duration("progress-every", time.Second, "how often progress is shown (and at the end of each phase)")
	ignoreProviders := a.fs.Bool("ignore-missing-auth-providers", false,
		"report SSO links to providers Gatehouse has no upstream provider for as warnings, not errors")
	if err := a.parse(args, 0); err != nil {
		return finish(stderr, cmd, err)
	}
	if *check && *dryRun {
		return finish(stderr, cmd, fmt.Errorf("%w: give --check or --dry-run, not both", errUsage))
	}
	if *format != "auto" && *format != "text" && *format != "json" {
		return finish(stderr, cmd, fmt.Errorf("%w: --format must be text, json or auto", errUsage))
	}
	if *batch < 1 || *batch > 2000 {
		return finish(stderr, cmd, fmt.Errorf("%w: --batch must be 1 to 2000", errUsage))
	}
	if *workers < 1 || *workers > 64 {
		return finish(stderr, cmd, fmt.Errorf("%w: --workers must be 1 to 64", errUsage))
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
	text := *format == "text" || (*format == "auto" && isTerminal(stdout))
	// SSO links resolve to the upstream providers naming their auth_provider
	// (synapse_idp_id).
	var providers []string
	for _, p := range cfg.Upstream.Providers {
		if p.SynapseIdpID != "" {
			providers = append(providers, p.SynapseIdpID)
		}
	}
	in := synapse.CheckInput{
		ServerName:             cfg.Matrix.ServerName,
		Homeserver:             hs,
		IgnoreMissingProviders: *ignoreProviders,
		Pepper:                 string(cfg.Passwords.BcryptPepper),
		Providers:              providers,
	}
	mode := synapse.ModeCheck
	var imp synapse.Importer
	if !*check {
		mode = synapse.ModeMigrate
		if *dryRun {
			mode = synapse.ModeDryRun
		}
		conn, err := a.dial()
		if err != nil {
			return finish(stderr, cmd, err)
		}
		defer conn.Close()
		imp = synapse.Importer{Accounts: accountsv1.NewAccountsServiceClient(conn), Token: tokenv1.NewTokenServiceClient(conn)}
		// Users Gatehouse holds that an earlier run did not import clash.
		in.UsernamesExist = func(ctx context.Context, names []string) ([]string, error) {
			found, err := imp.Accounts.FindUsernames(ctx, &accountsv1.FindUsernamesRequest{Usernames: names})
			if err != nil {
				return nil, err
			}
			var clash []string
			for _, f := range found.GetFound() {
				if f.GetImportedFrom() != "synapse" && f.GetUsername() == f.GetAsked() {
					clash = append(clash, f.GetAsked())
				}
			}
			return clash, nil
		}
	}
	report, err := synapse.RunCheck(ctx, url, mode, in)
	if err != nil {
		return finish(stderr, cmd, err)
	}
	if text {
		err = report.WriteText(stdout)
	} else {
		err = report.WriteJSON(stdout)
	}
	if err != nil {
		return finish(stderr, cmd, err)
	}
	if *check || report.Count(synapse.SeverityError) > 0 {
		if !*check {
			fmt.Fprintf(stderr, "gatehouse %s: the check found errors: nothing was imported\n", cmd)
		}
		return report.ExitCode()
	}
	serverName := cfg.Matrix.ServerName
	if hs != nil {
		serverName = hs.ServerName
	}
	src, err := synapse.Open(ctx, url, synapse.Options{Mode: mode, ServerName: serverName})
	if err != nil {
		return finish(stderr, cmd, err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	progress := progressPrinter(stdout, stderr, text)
	sum, err := synapse.Import(ctx, src, imp, synapse.ImportOptions{Batch: *batch, Workers: *workers, DryRun: *dryRun, Progress: progress, ProgressEvery: *every})
	if err != nil {
		return finish(stderr, cmd, fmt.Errorf("the import stopped (run the same command again to go on; nothing is written twice): %w", err))
	}
	if err := writeSummary(stdout, sum, text); err != nil {
		return finish(stderr, cmd, err)
	}
	return 0
}

// progressPrinter shows an import's progress: a line redrawn on stderr on a
// terminal, JSON lines ({"progress": …}) on stdout otherwise.
func progressPrinter(stdout, stderr io.Writer, text bool) func(synapse.Progress) {
	if !text {
		enc := json.NewEncoder(stdout)
		return func(p synapse.Progress) { _ = enc.Encode(map[string]any{"progress": p}) }
	}
	return func(p synapse.Progress) {
		line := fmt.Sprintf("\r%-20s %10d", p.Phase, p.Done)
		if p.Total > 0 {
			line += fmt.Sprintf(" / %-10d %5.1f%%", p.Total, 100*float64(p.Done)/float64(p.Total))
		}
		line += fmt.Sprintf("  %8.0f/s", p.Rate)
		if p.ETA > 0 && !p.Final {
			line += "  ETA " + p.ETA.String()
		}
		if p.Final {
			line += "  done\n"
		}
		fmt.Fprint(stderr, line+"\x1b[K")
	}
}

// writeSummary prints what an import did, and the steps left on Synapse's side.
func writeSummary(w io.Writer, sum *synapse.ImportSummary, text bool) error {
	if !text {
		return json.NewEncoder(w).Encode(map[string]any{"summary": sum, "changed": sum.Changed()})
	}
	verb := "imported"
	if sum.DryRun {
		verb = "would import"
	}
	line := func(what string, o synapse.Outcomes) {
		n := o.Imported
		if sum.DryRun {
			n = o.WouldImport
		}
		fmt.Fprintf(w, "%-20s %s %d, already imported %d, clashes %d, invalid %d\n", what, verb, n, o.AlreadyImported, o.Clashes, o.Invalid)
		for msg, t := range o.Problems {
			fmt.Fprintf(w, "    %s: %d (e.g. %v)\n", msg, t.Count, t.Examples)
		}
		for msg, t := range o.Notes {
			fmt.Fprintf(w, "    %s: %d (e.g. %v)\n", msg, t.Count, t.Examples)
		}
	}
	fmt.Fprintln(w)
	line("users", sum.Users)
	line("sessions", sum.Sessions)
	line("registration tokens", sum.RegistrationTokens)
	fmt.Fprintf(w, "%-20s %d (as hashes)\n", "tokens", sum.Tokens)
	fmt.Fprintf(w, "took %s\n", sum.Elapsed.Round(time.Millisecond))
	switch {
	case sum.DryRun:
		fmt.Fprintln(w, "dry run: nothing was written")
	case !sum.Changed():
		fmt.Fprintln(w, "nothing changed: everything was imported before")
	default:
		fmt.Fprintln(w, `next, on Synapse's side: keep it stopped until its homeserver.yaml delegates authentication
to Gatehouse (matrix_authentication_service: enabled, endpoint, secret) with password login,
registration, SSO providers and refresh/session lifetimes turned off, then start it`)
	}
	return nil
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
