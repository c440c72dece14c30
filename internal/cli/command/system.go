package command

import (
	"context"
	"runtime"
	"sync"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
)

// versionInfo has the shape docker's `version --format` templates expect.
type versionInfo struct {
	Client clientVersion
	Server *serverVersion
}

type clientVersion struct {
	Platform          struct{ Name string }
	Version           string
	APIVersion        string `json:"ApiVersion"`
	DefaultAPIVersion string `json:"DefaultAPIVersion,omitempty"`
	GoVersion         string
	GitCommit         string
	BuildTime         string `json:"BuildTime,omitempty"`
	Os                string
	Arch              string
	Context           string
}

type serverVersion struct {
	Platform      struct{ Name string }
	Components    []componentVersion
	Version       string
	APIVersion    string `json:"ApiVersion"`
	MinAPIVersion string `json:"MinAPIVersion,omitempty"`
	GitCommit     string
	GoVersion     string
	Os            string
	Arch          string
	KernelVersion string `json:",omitempty"`
	BuildTime     string `json:",omitempty"`
}

type componentVersion struct {
	Name    string
	Version string
	Details map[string]string `json:",omitempty"`
}

// versionTemplate lays out `version` as docker does: the Engine component
// with its details named, other components with version and commit. It is
// parsed on first use: package initialization runs in every berth process,
// container starts included.
var versionTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("version").Funcs(format.Funcs()).Parse(versionLayout))
})

const versionLayout = `Client:
 Version:           {{.Client.Version}}
 API version:       {{.Client.APIVersion}}{{if ne .Client.APIVersion .Client.DefaultAPIVersion}} (downgraded from {{.Client.DefaultAPIVersion}}){{end}}
 Go version:        {{.Client.GoVersion}}
 OS/Arch:           {{.Client.Os}}/{{.Client.Arch}}
 Context:           {{.Client.Context}}
{{- if .Server}}

Server:{{if .Server.Platform.Name}} {{.Server.Platform.Name}}{{end}}
{{- range .Server.Components}}
 {{.Name}}:
  Version:          {{.Version}}
{{- if eq .Name "Engine"}}
  API version:      {{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})
  Go version:       {{index .Details "GoVersion"}}
  Git commit:       {{index .Details "GitCommit"}}
  Built:            {{index .Details "BuildTime"}}
  OS/Arch:          {{index .Details "Os"}}/{{index .Details "Arch"}}
  Experimental:     {{index .Details "Experimental"}}
{{- else}}
  GitCommit:        {{index .Details "GitCommit"}}
{{- end}}
{{- end}}
{{- end}}
`

func (c *CLI) versionCommand() *cobra.Command {
	var tmpl string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the berth version information",
		Args:  c.noArgs(),
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format output using a custom template:\n'json': Print in JSON format\n'TEMPLATE': Print output using the given Go template")
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		var t *template.Template
		if tmpl != "" && tmpl != format.JSONKey {
			var err error
			// docker exits 64 for a bad version template.
			if t, err = format.Parse(tmpl); err != nil {
				return status(64, err)
			}
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		v := versionInfo{Client: clientVersion{
			Version: c.Version, DefaultAPIVersion: client.MaxAPIVersion, GoVersion: runtime.Version(),
			Os: runtime.GOOS, Arch: runtime.GOARCH, Context: "default",
		}}
		v.Client.Platform.Name = "berth"
		sv, serr := api.ServerVersion(ctx, client.ServerVersionOptions{})
		v.Client.APIVersion = api.ClientVersion()
		if serr == nil {
			s := &serverVersion{
				Version: sv.Version, APIVersion: sv.APIVersion, MinAPIVersion: sv.MinAPIVersion,
				Os: sv.Os, Arch: sv.Arch,
			}
			s.Platform.Name = sv.Platform.Name
			for _, comp := range sv.Components {
				s.Components = append(s.Components, componentVersion{Name: comp.Name, Version: comp.Version, Details: comp.Details})
				if comp.Name == "Engine" {
					s.GitCommit, s.GoVersion = comp.Details["GitCommit"], comp.Details["GoVersion"]
					s.KernelVersion, s.BuildTime = comp.Details["KernelVersion"], comp.Details["BuildTime"]
				}
			}
			v.Server = s
		}
		switch {
		case tmpl == format.JSONKey:
			err = format.Object(c.Out, "{{json .}}", v)
		case t != nil:
			err = format.Object(c.Out, tmpl, v)
		default:
			err = versionTemplate().Execute(c.Out, v)
		}
		if err != nil {
			return err
		}
		return c.explain(serr)
	})
	return cmd
}

func (c *CLI) infoCommand() *cobra.Command {
	var tmpl string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  c.noArgs(),
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		if tmpl != "" && tmpl != format.JSONKey {
			if _, err := format.Parse(tmpl); err != nil {
				return err
			}
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		res, err := api.Info(ctx, client.InfoOptions{})
		if err != nil {
			return c.explain(err)
		}
		i := res.Info
		if tmpl != "" {
			if tmpl == format.JSONKey {
				tmpl = "{{json .}}"
			}
			return format.Object(c.Out, tmpl, i)
		}
		printInfo(c.Out, c.Err, c.Version, i)
		return nil
	})
	return cmd
}
