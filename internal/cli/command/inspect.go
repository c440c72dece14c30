package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
)

// inspectCommandFor is `inspect` for one kind of object ("container",
// "image"), or for either when kind is "" (the top-level verb, with --type).
func (c *CLI) inspectCommandFor(kind string) *cobra.Command {
	var tmpl string
	var size bool
	cmd := &cobra.Command{
		Use:               "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short:             "Return low-level information on berth objects",
		Args:              c.minArgs(1),
		ValidArgsFunction: c.completeContainers,
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format output using a custom template")
	switch kind {
	case "":
		cmd.Flags().StringVar(&kind, "type", "", "Only inspect objects of the given type (container, image, volume)")
	case "image":
		cmd.Short, cmd.Use = "Display detailed information on one or more images", "inspect [OPTIONS] IMAGE [IMAGE...]"
		cmd.ValidArgsFunction = c.completeImages
	case "container":
		cmd.Short, cmd.Use = "Display detailed information on one or more containers", "inspect [OPTIONS] CONTAINER [CONTAINER...]"
	}
	if kind != "image" {
		cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container")
	}
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if kind != "" && kind != "container" && kind != "image" && kind != "volume" {
			return fmt.Errorf("%q is not a valid value for --type", kind)
		}
		return c.inspectEach(args, tmpl, func(api *client.Client, name string) (inspected, error) {
			return c.inspectOne(ctx, api, name, kind, size)
		})
	})
	return cmd
}

// inspected is one object an inspect verb found: its JSON as the API sent
// it and, when known, its API type (docker runs templates on that first).
type inspected struct {
	raw   json.RawMessage
	typed any // a pointer to the decoded API type, or nil
}

// inspectEach is the body of every inspect verb: a bad template is
// docker's status 64 before the daemon is asked; then it prints the objects
// fetch finds, through printInspect; names it fails on are reported as
// forEach does.
func (c *CLI) inspectEach(names []string, tmpl string, fetch func(api *client.Client, name string) (inspected, error)) error {
	if tmpl != "" && tmpl != format.JSONKey {
		if _, err := format.Parse(tmpl); err != nil {
			return status(64, err)
		}
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	var raws []inspected
	err = c.forEach(names, func(name string) error {
		obj, err := fetch(api, name)
		if err == nil {
			raws = append(raws, obj)
		}
		return err
	})
	var se *StatusError
	if err != nil && !errors.As(err, &se) {
		return err
	}
	if perr := c.printInspect(raws, tmpl); perr != nil {
		return perr
	}
	return err
}

// forEach runs fn on each name, docker's way for verbs taking several
// objects: an API error is printed and the rest still done, and the
// command then fails with status 1; any other error stops at once.
func (c *CLI) forEach(names []string, fn func(name string) error) error {
	failed := false
	for _, name := range names {
		if err := fn(name); err != nil {
			err = c.explain(err)
			if !isAPIError(err) {
				return err
			}
			fmt.Fprintln(c.Err, err)
			failed = true
		}
	}
	if failed {
		return &StatusError{Code: 1}
	}
	return nil
}

// inspectOne finds a container, or else an image, or else a volume, by
// name or ID (docker's order).
func (c *CLI) inspectOne(ctx context.Context, api *client.Client, name, kind string, size bool) (inspected, error) {
	if kind == "volume" {
		return volumeInspect(ctx, api, name)
	}
	if kind != "image" {
		res, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{Size: size})
		if err == nil {
			return inspected{raw: res.Raw, typed: &container.InspectResponse{}}, nil
		}
		if !cerrdefs.IsNotFound(err) || kind == "container" {
			return inspected{}, err
		}
	}
	res, err := api.ImageInspect(ctx, name)
	if err == nil {
		var b bytes.Buffer
		if err := json.NewEncoder(&b).Encode(res.InspectResponse); err != nil {
			return inspected{}, err
		}
		return inspected{raw: b.Bytes(), typed: &image.InspectResponse{}}, nil
	}
	if cerrdefs.IsNotFound(err) && kind == "" {
		obj, verr := volumeInspect(ctx, api, name)
		if verr == nil || !cerrdefs.IsNotFound(verr) {
			return obj, verr
		}
		return inspected{}, fmt.Errorf("Error: No such object: %s", name)
	}
	return inspected{}, err
}

// printInspect prints docker's indented JSON array, or the template applied
// to each object, one per line: as docker, on the object's API type first
// (so `json` keeps the type's field order), else (a field the type lacks,
// say `.Id`) on the JSON decoded generically, numbers kept exact.
func (c *CLI) printInspect(raws []inspected, tmpl string) error {
	if tmpl == "" || tmpl == format.JSONKey {
		var b bytes.Buffer
		b.WriteString("[")
		for i, r := range raws {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n    ")
			if err := json.Indent(&b, bytes.TrimSpace(r.raw), "    ", "    "); err != nil {
				return err
			}
		}
		if len(raws) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("]\n")
		_, err := b.WriteTo(c.Out)
		return err
	}
	for _, r := range raws {
		if r.typed != nil && json.Unmarshal(r.raw, r.typed) == nil {
			var b bytes.Buffer
			if format.Object(&b, tmpl, r.typed) == nil {
				if _, err := b.WriteTo(c.Out); err != nil {
					return err
				}
				continue
			}
		}
		dec := json.NewDecoder(bytes.NewReader(r.raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if err := format.Object(c.Out, tmpl, v); err != nil {
			fmt.Fprintln(c.Out) // docker ends the object's line even when its template fails
			return err
		}
	}
	return nil
}

// inspectContainer gets the client and the container name names, for the
// verbs that read its configuration before they act (attach, start -a,
// logs, port).
func (c *CLI) inspectContainer(ctx context.Context, name string) (*client.Client, container.InspectResponse, error) {
	api, err := c.Client()
	if err != nil {
		return nil, container.InspectResponse{}, err
	}
	res, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return nil, container.InspectResponse{}, c.explain(err)
	}
	return api, res.Container, nil
}
