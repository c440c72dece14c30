package engine

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/errdefs"
)

// validChanges are the Dockerfile instructions docker commit and import
// accept as --change.
var validChanges = []string{"cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "stopsignal", "user", "volume", "workdir"}

// ApplyChanges applies Dockerfile instructions (docker commit/import
// --change) to cfg the way a build would: parsed and expanded by the
// Dockerfile frontend (quotes, escapes, $VARS from cfg's env, JSON or shell
// form), an ENTRYPOINT without a CMD among the changes clearing the
// command.
func ApplyChanges(cfg *container.Config, changes []string) error {
	cmdSet := false
	for _, ch := range changes {
		ast, err := parser.Parse(strings.NewReader(ch))
		if err != nil {
			return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
		}
		lex := shell.NewLex(ast.EscapeToken)
		for _, node := range ast.AST.Children {
			if name := strings.ToLower(node.Value); !slices.Contains(validChanges, name) {
				return fmt.Errorf("%s is not a valid change command: %w", name, errdefs.ErrInvalidArgument)
			}
			cmd, err := instructions.ParseCommand(node)
			if err != nil {
				return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
			}
			if e, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
				env := shell.EnvsFromSlice(cfg.Env)
				if err := e.Expand(func(w string) (string, error) {
					s, _, err := lex.ProcessWord(w, env)
					return s, err
				}); err != nil {
					return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
				}
			}
			if err := applyChange(cfg, cmd, &cmdSet); err != nil {
				return err
			}
		}
	}
	return nil
}

func applyChange(cfg *container.Config, cmd instructions.Command, cmdSet *bool) error {
	switch c := cmd.(type) {
	case *instructions.CmdCommand:
		cfg.Cmd, *cmdSet = commandLine(cfg, c.ShellDependantCmdLine), true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = commandLine(cfg, c.ShellDependantCmdLine)
		if !*cmdSet {
			cfg.Cmd = nil
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key+"="+kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.ExposeCommand:
		for _, p := range c.Ports {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			port, err := network.ParsePort(p)
			if err != nil {
				return fmt.Errorf("invalid port %q: %w", p, errdefs.ErrInvalidArgument)
			}
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = network.PortSet{}
			}
			cfg.ExposedPorts[port] = struct{}{}
		}
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.WorkdirCommand:
		wd := c.Path
		if !path.IsAbs(wd) {
			wd = path.Join("/", cfg.WorkingDir, wd)
		}
		cfg.WorkingDir = wd
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.VolumeCommand:
		for _, v := range c.Volumes {
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	}
	return nil
}

// commandLine is a CMD/ENTRYPOINT's argv: the shell form runs through the
// config's SHELL (/bin/sh -c by default).
func commandLine(cfg *container.Config, c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return slices.Clone(c.CmdLine)
	}
	sh := []string{"/bin/sh", "-c"}
	if len(cfg.Shell) > 0 {
		sh = cfg.Shell
	}
	return append(slices.Clone(sh), strings.Join(c.CmdLine, " "))
}
