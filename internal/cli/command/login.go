package command

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/containerd/console"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	"github.com/moby/moby/api/types/registry"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/image"
)

// Credentials live where docker keeps them (DOCKER_CONFIG or
// ~/.docker/config.json, credential helpers included), so berth and docker
// share logins. The daemon never stores them: pull and push send them in
// X-Registry-Auth, login has the daemon check them (POST /auth).

// indexServer is the key docker files Docker Hub's credentials under.
const indexServer = "https://index.docker.io/v1/"

func (c *CLI) configFile() (*configfile.ConfigFile, error) {
	dir := c.Getenv("DOCKER_CONFIG")
	if dir == "" {
		dir = filepath.Join(c.Getenv("HOME"), ".docker")
	}
	return config.Load(dir)
}

// registryAuth is X-Registry-Auth for image name: the stored credentials
// of its registry, or "" when there are none.
func (c *CLI) registryAuth(name string) string {
	ref, err := image.ParseNamed(name)
	if err != nil {
		return ""
	}
	key := ref.Domain
	if key == "docker.io" {
		key = indexServer
	}
	cfg, err := c.configFile()
	if err != nil {
		return ""
	}
	ac, err := cfg.GetAuthConfig(key)
	if err != nil || (ac.Username == "" && ac.IdentityToken == "" && ac.RegistryToken == "") {
		return ""
	}
	data, err := json.Marshal(registry.AuthConfig{
		Username: ac.Username, Password: ac.Password, ServerAddress: key,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	})
	if err != nil {
		return ""
	}
	return base64.URLEncoding.EncodeToString(data)
}

type loginOptions struct {
	user, password string
	passwordStdin  bool
}

func (c *CLI) loginCommand() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Authenticate to a registry",
		Args:  c.maxArgs(1),
	}
	f := cmd.Flags()
	f.StringVarP(&o.user, "username", "u", "", "Username")
	f.StringVarP(&o.password, "password", "p", "", `Password or Personal Access Token (PAT), or "-" to read from stdin`)
	f.BoolVar(&o.passwordStdin, "password-stdin", false, "Take the Password or Personal Access Token (PAT) from stdin")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if o.passwordStdin || o.password == "-" {
			if f.Changed("password") && o.password != "-" {
				return errors.New("conflicting options: cannot specify both --password and --password-stdin")
			}
			if !f.Changed("username") {
				return errors.New("the --password-stdin option requires --username to be set")
			}
		}
		if f.Changed("username") && o.user == "" {
			return errors.New("username is empty")
		}
		if f.Changed("password") && o.password == "" {
			return errors.New("password is empty")
		}
		server := indexServer
		if len(args) == 1 && args[0] != "docker.io" {
			server = args[0]
		}
		return c.login(ctx, server, o)
	})
	return cmd
}

func (c *CLI) login(ctx context.Context, server string, o loginOptions) error {
	if o.password == "-" {
		o.password, o.passwordStdin = "", true
	}
	if o.password != "" {
		fmt.Fprintln(c.Err, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
	}
	if o.passwordStdin {
		b, err := io.ReadAll(c.In)
		if err != nil {
			return err
		}
		for _, eol := range []string{"\r\n", "\n", "\r"} {
			var ok bool
			if b, ok = bytes.CutSuffix(b, []byte(eol)); ok {
				break
			}
		}
		if strings.TrimSpace(string(b)) == "" {
			return errors.New("password is empty")
		}
		o.password = string(b)
	}
	cfg, err := c.configFile()
	if err != nil {
		return err
	}
	if o.user == "" || o.password == "" {
		if err := c.promptCredentials(cfg, server, &o); err != nil {
			return err
		}
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	res, err := api.RegistryLogin(ctx, client.RegistryLoginOptions{Username: o.user, Password: o.password, ServerAddress: server})
	if err != nil {
		return c.explain(err)
	}
	ac := types.AuthConfig{Username: o.user, Password: o.password, ServerAddress: server}
	if res.Auth.IdentityToken != "" {
		ac.Password, ac.IdentityToken = "", res.Auth.IdentityToken
	}
	if err := cfg.GetCredentialsStore(server).Store(ac); err != nil {
		return fmt.Errorf("error saving credentials: %v", err)
	}
	if !cfg.ContainsAuth() || cfg.CredentialsStore == "" {
		fmt.Fprintf(c.Err, "WARNING! Your credentials are stored unencrypted in '%s'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n\n", cfg.Filename)
	}
	status := res.Auth.Status
	if status == "" {
		status = "Login Succeeded"
	}
	fmt.Fprintln(c.Out, status)
	return nil
}

// promptCredentials asks for what the flags left out, on a terminal only.
func (c *CLI) promptCredentials(cfg *configfile.ConfigFile, server string, o *loginOptions) error {
	if !isTerminal(c.In) {
		return errors.New("Error: Cannot perform an interactive login from a non TTY device")
	}
	in := bufio.NewReader(c.In)
	if o.user == "" {
		prev, _ := cfg.GetAuthConfig(server)
		if prev.Username != "" {
			fmt.Fprintf(c.Out, "Username (%s): ", prev.Username)
		} else {
			fmt.Fprint(c.Out, "Username: ")
		}
		line, _ := in.ReadString('\n')
		if o.user = strings.TrimSpace(line); o.user == "" {
			o.user = prev.Username
		}
		if o.user == "" {
			return errors.New("Error: Non-null Username Required")
		}
	}
	if o.password == "" {
		fmt.Fprint(c.Out, "Password: ")
		con := console.Current()
		if err := con.DisableEcho(); err == nil {
			defer con.Reset()
		}
		line, _ := in.ReadString('\n')
		fmt.Fprintln(c.Out)
		if o.password = strings.TrimRight(line, "\r\n"); o.password == "" {
			return errors.New("Error: Password Required")
		}
	}
	return nil
}

func (c *CLI) logoutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  c.maxArgs(1),
	}
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		server, host := indexServer, indexServer
		keys := []string{indexServer}
		if len(args) == 1 && args[0] != "docker.io" {
			server = args[0]
			host = credentials.ConvertToHostname(server)
			keys = []string{server, host, "http://" + host, "https://" + host}
		}
		cfg, err := c.configFile()
		if err != nil {
			return err
		}
		fmt.Fprintln(c.Out, "Removing login credentials for", host)
		var failed []string
		for _, k := range keys {
			if err := cfg.GetCredentialsStore(k).Erase(k); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %s", k, err))
			}
		}
		if len(failed) == len(keys) {
			fmt.Fprintln(c.Err, "WARNING: could not erase credentials:")
			for _, f := range failed {
				fmt.Fprintln(c.Err, f)
			}
		}
		return nil
	})
	return cmd
}
