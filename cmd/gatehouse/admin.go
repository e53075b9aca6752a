package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/secretfile"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
)

// errUsage marks a wrong command line (exit code 2).
var errUsage = errors.New("usage")

// admin is what every admin command needs: parsed flags and a connection.
type admin struct {
	fs         *flag.FlagSet
	configPath *string
	grpcAddr   *string
	token      *string
	positional []string
	stdin      io.Reader
	stdout     io.Writer
}

func newAdmin(name string, stdin io.Reader, stdout, stderr io.Writer) *admin {
	fs := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &admin{
		fs:         fs,
		configPath: fs.String("config", os.Getenv("GATEHOUSE_CONFIG"), "configuration file"),
		grpcAddr:   fs.String("grpc", "", "gRPC address of a running Gatehouse (default: the configured grpc.addr)"),
		token: fs.String("token", os.Getenv("GATEHOUSE_ADMIN_TOKEN"),
			"an administrator's OAuth access token or personal access token (urn:gatehouse:admin) to call with, instead of the credential derived from the internal secret (env GATEHOUSE_ADMIN_TOKEN)"),
		stdin:  stdin,
		stdout: stdout,
	}
}

// parse parses flags wherever they stand among the positional arguments.
func (a *admin) parse(args []string, positional int) error {
	if err := a.collect(args); err != nil {
		return err
	}
	if len(a.positional) != positional {
		return fmt.Errorf("%w: expected %d argument(s), got %d", errUsage, positional, len(a.positional))
	}
	return nil
}

// collect parses flags and positional arguments in any order.
func (a *admin) collect(args []string) error {
	for {
		if err := a.fs.Parse(args); err != nil {
			return errUsage
		}
		if a.fs.NArg() == 0 {
			return nil
		}
		a.positional = append(a.positional, a.fs.Arg(0))
		args = a.fs.Args()[1:]
	}
}

// dial connects to the gRPC API of a running Gatehouse as an administrator:
// with an administrator's token (--token, GATEHOUSE_ADMIN_TOKEN), or else
// with the admin credential derived from the internal secret (configured, or
// the one `gatehouse serve` generated under data_dir/secrets on this
// machine), over TLS when gRPC runs over TLS (presenting grpc.tls.cert_file,
// which may name the admin caller for mutual TLS).
func (a *admin) dial() (*grpc.ClientConn, error) {
	cfg, err := config.Load(*a.configPath, os.Environ())
	if err != nil {
		return nil, err
	}
	addr := *a.grpcAddr
	if addr == "" {
		addr = cfg.GRPC.Addr
	}
	if tok := strings.TrimSpace(*a.token); tok != "" {
		// The same authenticated path as the admin API: the token is the
		// credential, which every service has the token service verify, and
		// what is done is recorded as that administrator's.
		opts := grpcx.DialOptions{DefaultTimeout: time.Minute, Credential: grpcx.Credential{Bearer: tok}}
		if t := cfg.GRPC.TLS; t.Enabled() || t.CAFile != "" {
			if opts.TLS, err = grpcx.ClientTLS(grpcx.TLSFiles{CAFile: t.CAFile}); err != nil {
				return nil, err
			}
		}
		return grpcx.Dial(addr, opts)
	}
	opts := grpcx.DialOptions{DefaultTimeout: time.Minute, Credential: grpcx.Credential{Name: "admin"}}
	secret := []byte(cfg.Internal.Secret)
	if len(secret) == 0 {
		secret, err = secretfile.Load(host.InternalSecretPath(cfg))
		if err != nil && !cfg.GRPC.TLS.Enabled() {
			return nil, fmt.Errorf("no admin credential: set internal.secret (GATEHOUSE_INTERNAL_SECRET) to the deployment's, or run this where `gatehouse serve` keeps %s (%v)", host.InternalSecretPath(cfg), err)
		}
	}
	if len(secret) > 0 {
		opts.Credential.Bearer = grpcx.DeriveCredential(secret, "admin")
	}
	if t := cfg.GRPC.TLS; t.Enabled() || t.CAFile != "" {
		if opts.TLS, err = grpcx.ClientTLS(grpcx.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile}); err != nil {
			return nil, err
		}
	}
	return grpcx.Dial(addr, opts)
}

// finish turns a command's result into an exit code and a clear message.
func finish(stderr io.Writer, cmd string, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "gatehouse %s: %v\n\n%s", cmd, err, usage)
		return 2
	default:
		// Errors from the server carry a message meant for its caller; the
		// CLI's own (configuration, credentials, flags) say what is wrong.
		msg := err.Error()
		if _, fromServer := errors.AsType[*errs.Error](err); fromServer {
			msg = errs.PublicMessage(err)
		}
		if errs.KindOf(err) == errs.KindUnavailable {
			msg += " (is `gatehouse serve` running? see --grpc)"
		}
		fmt.Fprintf(stderr, "gatehouse %s: %s\n", cmd, msg)
		return 1
	}
}

// readPassword takes a password from --password or from --password-file
// ("-" for standard input), so it need not appear in the process list.
func (a *admin) readPassword(flagValue, file string) (string, error) {
	if flagValue != "" && file != "" {
		return "", fmt.Errorf("%w: give --password or --password-file, not both", errUsage)
	}
	if file == "" {
		return flagValue, nil
	}
	var r io.Reader = a.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func userCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return finish(stderr, "user", fmt.Errorf("%w: user needs a subcommand", errUsage))
	}
	sub, args := args[0], args[1:]
	a := newAdmin("user "+sub, stdin, stdout, stderr)
	return finish(stderr, "user "+sub, a.user(ctx, sub, args))
}

func (a *admin) user(ctx context.Context, sub string, args []string) error {
	switch sub {
	case "add":
		return a.userAdd(ctx, args)
	case "list":
		return a.userList(ctx, args)
	case "lock", "unlock", "deactivate", "reactivate":
		return a.userState(ctx, sub, args)
	case "set-password":
		return a.userSetPassword(ctx, args)
	case "audit":
		return a.userAudit(ctx, args)
	case "reset-factors", "require-factor":
		return a.userFactors(ctx, sub, args)
	default:
		return fmt.Errorf("%w: unknown user subcommand %q", errUsage, sub)
	}
}

func (a *admin) accounts() (accountsv1.AccountsServiceClient, func(), error) {
	conn, err := a.dial()
	if err != nil {
		return nil, nil, err
	}
	return accountsv1.NewAccountsServiceClient(conn), func() { conn.Close() }, nil
}

func (a *admin) userAdd(ctx context.Context, args []string) error {
	username := a.fs.String("username", "", "Matrix localpart of the new user (required)")
	pw := a.fs.String("password", "", "password")
	pwFile := a.fs.String("password-file", "", "read the password from this file, - for standard input")
	email := a.fs.String("email", "", "email address (the administrator vouches for it: no code is sent)")
	displayName := a.fs.String("display-name", "", "display name")
	isAdmin := a.fs.Bool("admin", false, "make the user an administrator")
	if err := a.parse(args, 0); err != nil {
		return err
	}
	if *username == "" {
		return fmt.Errorf("%w: --username is required", errUsage)
	}
	password, err := a.readPassword(*pw, *pwFile)
	if err != nil {
		return err
	}
	c, done, err := a.accounts()
	if err != nil {
		return err
	}
	defer done()
	// The administrator vouches for the address: no code is emailed.
	resp, err := c.Register(ctx, &accountsv1.RegisterRequest{
		Username: *username, Password: password, Email: *email, Admin: *isAdmin, DisplayName: *displayName,
		SkipVerification: *email != "",
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "created user %s (%s)\n", resp.GetUser().GetUsername(), resp.GetUser().GetId())
	return nil
}

func (a *admin) userList(ctx context.Context, args []string) error {
	statusFlag := a.fs.String("status", "", "only users that are active, locked or deactivated")
	if err := a.parse(args, 0); err != nil {
		return err
	}
	statuses := map[string]accountsv1.UserStatus{
		"":            accountsv1.UserStatus_USER_STATUS_UNSPECIFIED,
		"active":      accountsv1.UserStatus_USER_STATUS_ACTIVE,
		"locked":      accountsv1.UserStatus_USER_STATUS_LOCKED,
		"deactivated": accountsv1.UserStatus_USER_STATUS_DEACTIVATED,
	}
	status, ok := statuses[*statusFlag]
	if !ok {
		return fmt.Errorf("%w: --status must be active, locked or deactivated", errUsage)
	}
	c, done, err := a.accounts()
	if err != nil {
		return err
	}
	defer done()
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tUSERNAME\tEMAIL\tADMIN\tSTATUS\tCREATED")
	token := ""
	for {
		resp, err := c.ListUsers(ctx, &accountsv1.ListUsersRequest{PageSize: 500, PageToken: token, Status: status})
		if err != nil {
			return err
		}
		for _, u := range resp.GetUsers() {
			fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\t%s\n", u.GetId(), u.GetUsername(), u.GetEmail(), u.GetAdmin(), userStatus(u), u.GetCreatedAt().AsTime().Format(time.RFC3339))
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	return w.Flush()
}

func userStatus(u *accountsv1.User) string {
	switch {
	case u.GetErased():
		return "erased"
	case u.GetDeactivated():
		return "deactivated"
	case u.GetLocked():
		return "locked"
	}
	return "active"
}

// lookup finds a user by username.
func lookup(ctx context.Context, c accountsv1.AccountsServiceClient, username string) (*accountsv1.User, error) {
	resp, err := c.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: username})
	if err != nil {
		return nil, err
	}
	return resp.GetUser(), nil
}

func (a *admin) userState(ctx context.Context, sub string, args []string) error {
	reason := a.fs.String("reason", "", "why (lock only; recorded in the audit log)")
	erase := a.fs.Bool("erase", false, "erase the user's personal data for good — addresses, display name, password, IP addresses and user agents — and ask the homeserver to erase theirs (deactivate only; the username stays reserved)")
	if err := a.parse(args, 1); err != nil {
		return err
	}
	c, done, err := a.accounts()
	if err != nil {
		return err
	}
	defer done()
	u, err := lookup(ctx, c, a.positional[0])
	if err != nil {
		return err
	}
	switch sub {
	case "lock":
		_, err = c.LockUser(ctx, &accountsv1.LockUserRequest{UserId: u.GetId(), Reason: *reason})
	case "unlock":
		_, err = c.UnlockUser(ctx, &accountsv1.UnlockUserRequest{UserId: u.GetId()})
	case "deactivate":
		_, err = c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: u.GetId(), Erase: *erase})
	case "reactivate":
		_, err = c.ReactivateUser(ctx, &accountsv1.ReactivateUserRequest{UserId: u.GetId()})
	}
	if err != nil {
		return err
	}
	if sub == "deactivate" && *erase {
		sub = "erase"
	}
	fmt.Fprintf(a.stdout, "%s: %s\n", strings.TrimSuffix(sub, "e")+"ed", u.GetUsername())
	return nil
}

func (a *admin) userSetPassword(ctx context.Context, args []string) error {
	pw := a.fs.String("password", "", "new password")
	pwFile := a.fs.String("password-file", "", "read the new password from this file, - for standard input")
	if err := a.parse(args, 1); err != nil {
		return err
	}
	password, err := a.readPassword(*pw, *pwFile)
	if err != nil {
		return err
	}
	if password == "" {
		return fmt.Errorf("%w: a new password is required (--password or --password-file)", errUsage)
	}
	c, done, err := a.accounts()
	if err != nil {
		return err
	}
	defer done()
	u, err := lookup(ctx, c, a.positional[0])
	if err != nil {
		return err
	}
	if _, err := c.SetPassword(ctx, &accountsv1.SetPasswordRequest{UserId: u.GetId(), NewPassword: password}); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "password set for %s\n", u.GetUsername())
	return nil
}

func (a *admin) userAudit(ctx context.Context, args []string) error {
	// The username may come before or after the flags, as for the other
	// user commands.
	if err := a.collect(args); err != nil || len(a.positional) > 1 {
		return fmt.Errorf("%w: user audit takes at most one username", errUsage)
	}
	c, done, err := a.accounts()
	if err != nil {
		return err
	}
	defer done()
	userID := ""
	if len(a.positional) == 1 {
		u, err := lookup(ctx, c, a.positional[0])
		if err != nil {
			return err
		}
		userID = u.GetId()
	}
	resp, err := c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: userID, PageSize: 500})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tWHEN\tUSER\tACTOR\tWHAT")
	for _, e := range resp.GetEntries() {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", e.GetSequence(), e.GetOccurredAt().AsTime().Format(time.RFC3339), e.GetUserId(), e.GetActor(), e.GetSummary())
	}
	return w.Flush()
}

func projectionsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return finish(stderr, "projections", fmt.Errorf("%w: projections needs list or rebuild", errUsage))
	}
	sub, args := args[0], args[1:]
	a := newAdmin("projections "+sub, nil, stdout, stderr)
	return finish(stderr, "projections "+sub, a.projections(ctx, sub, args))
}

func (a *admin) projections(ctx context.Context, sub string, args []string) error {
	want := map[string]int{"list": 0, "rebuild": 1}
	n, ok := want[sub]
	if !ok {
		return fmt.Errorf("%w: unknown projections subcommand %q", errUsage, sub)
	}
	var (
		maxRate    *float64
		background *bool
	)
	if sub == "rebuild" {
		maxRate = a.fs.Float64("max-rate", 0, "cap the rebuild at this many events per second (0: as fast as it goes)")
		background = a.fs.Bool("background", false, "start the rebuild and return; follow it with projections list")
	}
	if err := a.parse(args, n); err != nil {
		return err
	}
	if maxRate != nil && *maxRate < 0 {
		return fmt.Errorf("%w: --max-rate cannot be negative", errUsage)
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	c := projectionsv1.NewProjectionsServiceClient(conn)
	if sub == "rebuild" {
		return a.rebuild(ctx, c, a.positional[0], *maxRate, *background)
	}
	resp, err := c.ListProjections(ctx, &projectionsv1.ListProjectionsRequest{})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tSTREAM\tCHECKPOINT\tHEAD\tVERSION\tSTATE\tBUILD")
	for _, p := range resp.GetProjections() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", p.GetName(), p.GetKind(), p.GetStream(), p.GetCheckpoint(), p.GetHead(),
			p.GetVersion(), p.GetState(), buildProgress(p.GetBuild()))
	}
	return w.Flush()
}

// rebuild starts a rebuild in the background and, unless asked not to,
// follows it until the rebuilt read model is live, printing its progress.
func (a *admin) rebuild(ctx context.Context, c projectionsv1.ProjectionsServiceClient, name string, maxRate float64, background bool) error {
	start := time.Now()
	resp, err := c.RebuildProjection(ctx, &projectionsv1.RebuildProjectionRequest{Name: name, Background: true, MaxEventsPerSecond: maxRate})
	if err != nil {
		return err
	}
	target := resp.GetTarget()
	if background {
		fmt.Fprintf(a.stdout, "rebuilding %s up to event %d in the background: %s\n", name, target, buildProgress(resp.GetProjection().GetBuild()))
		return nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	for {
		list, err := c.ListProjections(ctx, &projectionsv1.ListProjectionsRequest{})
		if err != nil {
			return err
		}
		for _, p := range list.GetProjections() {
			if p.GetName() != name {
				continue
			}
			if p.GetState() == "live" && p.GetCheckpoint() >= target {
				fmt.Fprintf(a.stdout, "rebuilt %s up to event %d in %s\n", name, p.GetCheckpoint(), time.Since(start).Round(time.Millisecond))
				return nil
			}
			if line := buildProgress(p.GetBuild()); line != last && p.GetBuild() != nil {
				fmt.Fprintf(a.stdout, "building %s: %s\n", name, line)
				last = line
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// buildProgress describes a build under way: "v1 rebuild 1200/5000 (24%), 3100 events/s".
func buildProgress(b *projectionsv1.Build) string {
	if b == nil {
		return "-"
	}
	pct := 100.0
	if b.GetTarget() > 0 {
		pct = min(100, 100*float64(b.GetPosition())/float64(b.GetTarget()))
	}
	out := fmt.Sprintf("v%d %s %d/%d (%.0f%%), %.0f events/s", b.GetVersion(), b.GetReason(), b.GetPosition(), b.GetTarget(), pct, b.GetEventsPerSecond())
	if b.GetPosition() >= b.GetTarget() {
		out += ", following live until the swap"
	}
	return out
}

func configCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return finish(stderr, "config", fmt.Errorf("%w: config needs generate or check", errUsage))
	}
	sub, args := args[0], args[1:]
	a := newAdmin("config "+sub, nil, stdout, stderr)
	var err error
	switch sub {
	case "generate":
		synapseConfig := a.fs.String("synapse-config", "", "derive the configuration from Synapse's homeserver.yaml")
		if err = a.parse(args, 0); err == nil && *synapseConfig != "" {
			err = generateFromSynapse(*synapseConfig, a.stdout, stderr)
		} else if err == nil {
			var out []byte
			if out, err = config.Default().YAML(); err == nil {
				_, err = a.stdout.Write(out)
			}
		}
	case "check":
		if err = a.parse(args, 0); err == nil {
			var cfg config.Config
			if cfg, err = config.Load(*a.configPath, os.Environ()); err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				fmt.Fprintln(a.stdout, "configuration is valid")
			} else {
				fmt.Fprintf(stderr, "gatehouse config check: invalid configuration:\n%v\n", err)
				return 1
			}
		}
	default:
		err = fmt.Errorf("%w: unknown config subcommand %q", errUsage, sub)
	}
	return finish(stderr, "config "+sub, err)
}
