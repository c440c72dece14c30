package command

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/volume"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

// volumeCommand is `berth volume`: create, ls, inspect, rm, prune.
func (c *CLI) volumeCommand() *cobra.Command {
	cmd := c.groupCommand("volume", "Manage volumes")
	cmd.AddCommand(c.volumeCreateCommand(), c.volumeLsCommand(), c.volumeInspectCommand(),
		c.volumeRmCommand(), c.volumePruneCommand())
	return cmd
}

func (c *CLI) volumeCreateCommand() *cobra.Command {
	var driver, name string
	var opts, labels []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  c.maxArgs(1),
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	f.StringVar(&name, "name", "", "Specify volume name")
	_ = f.MarkHidden("name")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	f.StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if len(args) == 1 {
			if name != "" && name != args[0] {
				return &StatusError{Code: 1, Message: "conflicting options: cannot specify a volume-name through both --name and as a positional arg"}
			}
			name = args[0]
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		res, err := api.VolumeCreate(ctx, client.VolumeCreateOptions{
			Name: name, Driver: driver, DriverOpts: keyValueMap(opts), Labels: keyValueMap(labels),
		})
		if err != nil {
			return c.explain(err)
		}
		fmt.Fprintln(c.Out, res.Volume.Name)
		return nil
	})
	return cmd
}

// keyValueMap is docker's map options: KEY=VALUE, a bare KEY is an empty value.
func keyValueMap(kvs []string) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

const volumesTable = "table {{.Driver}}\t{{.Name}}"

var volumesHeader = map[string]string{
	"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
	"Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
	"Availability": "AVAILABILITY", "Status": "STATUS",
}

func (c *CLI) volumeLsCommand() *cobra.Command {
	var quiet bool
	var filters []string
	var tmpl string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    c.noArgs(),
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	f.StringArrayVarP(&filters, "filter", "f", nil, `Provide filter values (e.g. "dangling=true")`)
	f.StringVar(&tmpl, "format", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		return c.runLs(ctx, lsVerb{
			help: "volume ls", quietTmpl: "{{.Name}}", table: volumesTable, header: volumesHeader,
			rows: func(ctx context.Context, api *client.Client, fl client.Filters) ([]any, error) {
				res, err := api.VolumeList(ctx, client.VolumeListOptions{Filters: fl})
				if err != nil {
					return nil, err
				}
				vols := res.Items
				sort.Slice(vols, func(i, j int) bool { return vols[i].Name < vols[j].Name })
				rows := make([]any, len(vols))
				for i, v := range vols {
					rows[i] = &volumeRow{v: v}
				}
				return rows, nil
			},
		}, quiet, tmpl, filters)
	})
	return cmd
}

// volumeRow is one volume as docker's `volume ls` templates see it.
type volumeRow struct{ v volume.Volume }

func (r *volumeRow) Name() string       { return r.v.Name }
func (r *volumeRow) Driver() string     { return r.v.Driver }
func (r *volumeRow) Scope() string      { return r.v.Scope }
func (r *volumeRow) Mountpoint() string { return r.v.Mountpoint }
func (r *volumeRow) Label(name string) string {
	return r.v.Labels[name]
}
func (r *volumeRow) Labels() string { return joinLabels(r.v.Labels) }
func (r *volumeRow) Links() string {
	if r.v.UsageData == nil {
		return "N/A"
	}
	return fmt.Sprint(r.v.UsageData.RefCount)
}
func (r *volumeRow) Size() string {
	if r.v.UsageData == nil {
		return "N/A"
	}
	return units.HumanSize(float64(r.v.UsageData.Size))
}
func (r *volumeRow) Group() string        { return "N/A" }
func (r *volumeRow) Availability() string { return "N/A" }
func (r *volumeRow) Status() string       { return "N/A" }

// MarshalJSON gives `{{json .}}` the columns, as docker does.
func (r *volumeRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"Availability": r.Availability(), "Driver": r.Driver(), "Group": r.Group(), "Labels": r.Labels(),
		"Links": r.Links(), "Mountpoint": r.Mountpoint(), "Name": r.Name(), "Scope": r.Scope(),
		"Size": r.Size(), "Status": r.Status(),
	})
}

func (c *CLI) volumeInspectCommand() *cobra.Command {
	var tmpl string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  c.minArgs(1),
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		return c.inspectEach(args, tmpl, func(api *client.Client, name string) (inspected, error) {
			return volumeInspect(ctx, api, name)
		})
	})
	return cmd
}

func volumeInspect(ctx context.Context, api *client.Client, name string) (inspected, error) {
	res, err := api.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if err != nil {
		return inspected{}, err
	}
	raw := res.Raw
	if len(bytes.TrimSpace(raw)) == 0 {
		if raw, err = json.Marshal(res.Volume); err != nil {
			return inspected{}, err
		}
	}
	return inspected{raw: raw, typed: &volume.Volume{}}, nil
}

func (c *CLI) volumeRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    c.minArgs(1),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		api, err := c.Client()
		if err != nil {
			return err
		}
		return c.forEach(args, func(name string) error {
			if _, err := api.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: force}); err != nil {
				return err
			}
			fmt.Fprintln(c.Out, name)
			return nil
		})
	})
	return cmd
}

func (c *CLI) volumePruneCommand() *cobra.Command {
	var all bool
	cmd := c.pruneCommand("volumes",
		func() string {
			if all {
				return "WARNING! This will remove all local volumes not used by at least one container."
			}
			return "WARNING! This will remove anonymous local volumes not used by at least one container."
		},
		func(cmd *cobra.Command) {
			cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
		},
		func(ctx context.Context, api *client.Client, f client.Filters) (string, uint64, error) {
			if all {
				if _, ok := f["all"]; ok {
					return "", 0, &StatusError{Code: 125, Message: "conflicting options: cannot specify both --all and --filter all=1"}
				}
				f.Add("all", "true")
			}
			res, err := api.VolumePrune(ctx, client.VolumePruneOptions{Filters: f})
			if err != nil || len(res.Report.VolumesDeleted) == 0 {
				return "", 0, err
			}
			return "Deleted Volumes:\n" + strings.Join(res.Report.VolumesDeleted, "\n") + "\n", res.Report.SpaceReclaimed, nil
		})
	cmd.Flags().Lookup("filter").Usage = `Provide filter values (e.g. "label=<label>")`
	return cmd
}
