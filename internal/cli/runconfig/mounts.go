package runconfig

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

// checkVolumeSpec is docker's CLI check of a -v value before it is sent:
// up to three colon-separated sections, none empty (a one-letter section
// followed by a colon is a Windows drive, part of the next one).
func checkVolumeSpec(spec string) error {
	if spec == "" {
		return fmt.Errorf("invalid empty volume spec")
	}
	if len(spec) <= 2 {
		return nil
	}
	sections, start := 0, 0
	for i := 0; i <= len(spec); i++ {
		if i < len(spec) && spec[i] != ':' {
			continue
		}
		field := spec[start:i]
		if i < len(spec) && len(field) == 1 && unicode.IsLetter(rune(field[0])) {
			continue // a drive letter: the colon belongs to the section
		}
		if field == "" {
			return fmt.Errorf("invalid spec: %s: empty section between colons", spec)
		}
		sections++
		if sections == 3 && i < len(spec) {
			return fmt.Errorf("invalid spec: %s: too many colons", spec)
		}
		start = i + 1
	}
	return nil
}

// volumes splits -v values as docker's CLI does: a spec with a source
// goes to HostConfig.Binds (a relative "./dir" source made absolute), a
// bare container path becomes an anonymous volume in Config.Volumes.
func volumes(specs []string) (binds []string, anon map[string]struct{}, err error) {
	for _, s := range specs {
		if err := checkVolumeSpec(s); err != nil {
			return nil, nil, err
		}
		src, rest, ok := strings.Cut(s, ":")
		if !ok {
			if anon == nil {
				anon = map[string]struct{}{}
			}
			anon[s] = struct{}{}
			continue
		}
		if strings.HasPrefix(src, ".") {
			if abs, err := filepath.Abs(src); err == nil {
				s = abs + ":" + rest
			}
		}
		binds = append(binds, s)
	}
	return binds, anon, nil
}

// ParseMount reads one --mount value, docker's CSV of key=value fields.
func ParseMount(value string) (mount.Mount, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return mount.Mount{}, fmt.Errorf("value is empty")
	}
	fields, err := csv.NewReader(strings.NewReader(value)).Read()
	if err != nil {
		return mount.Mount{}, err
	}
	m := mount.Mount{Type: mount.TypeVolume}
	volOpts := func() *mount.VolumeOptions {
		if m.VolumeOptions == nil {
			m.VolumeOptions = &mount.VolumeOptions{}
		}
		return m.VolumeOptions
	}
	driver := func() *mount.Driver {
		if volOpts().DriverConfig == nil {
			m.VolumeOptions.DriverConfig = &mount.Driver{}
		}
		return m.VolumeOptions.DriverConfig
	}
	bindOpts := func() *mount.BindOptions {
		if m.BindOptions == nil {
			m.BindOptions = &mount.BindOptions{}
		}
		return m.BindOptions
	}
	tmpfsOpts := func() *mount.TmpfsOptions {
		if m.TmpfsOptions == nil {
			m.TmpfsOptions = &mount.TmpfsOptions{}
		}
		return m.TmpfsOptions
	}
	for _, field := range fields {
		key, val, hasValue := strings.Cut(field, "=")
		if k := strings.TrimSpace(key); k != key {
			return m, fmt.Errorf("invalid option '%s' in '%s': option should not have whitespace", k, field)
		}
		if hasValue {
			if v := strings.TrimSpace(val); v == "" {
				return m, fmt.Errorf("invalid value for '%s': value is empty", key)
			} else if v != val {
				return m, fmt.Errorf("invalid value for '%s' in '%s': value should not have whitespace", key, field)
			}
		}
		key = strings.ToLower(key)
		if !hasValue {
			switch key {
			case "readonly", "ro", "volume-nocopy", "bind-create-src":
			default:
				return m, fmt.Errorf("invalid field '%s' must be a key=value pair", field)
			}
		}
		switch key {
		case "type":
			m.Type = mount.Type(strings.ToLower(val))
		case "source", "src":
			m.Source = val
			if strings.HasPrefix(val, ".") {
				if abs, err := filepath.Abs(val); err == nil {
					m.Source = abs
				}
			}
		case "target", "dst", "destination":
			m.Target = val
		case "readonly", "ro":
			if m.ReadOnly, err = mountBool(key, val, hasValue); err != nil {
				return m, err
			}
		case "consistency":
			m.Consistency = mount.Consistency(strings.ToLower(val))
		case "bind-propagation":
			bindOpts().Propagation = mount.Propagation(strings.ToLower(val))
		case "bind-recursive":
			switch val {
			case "enabled":
			case "disabled":
				bindOpts().NonRecursive = true
			case "writable":
				bindOpts().ReadOnlyNonRecursive = true
			case "readonly":
				bindOpts().ReadOnlyForceRecursive = true
			default:
				return m, fmt.Errorf(`invalid value for %s: %s (must be "enabled", "disabled", "writable", or "readonly")`, key, val)
			}
		case "bind-create-src":
			if bindOpts().CreateMountpoint, err = mountBool(key, val, hasValue); err != nil {
				return m, err
			}
		case "volume-subpath":
			volOpts().Subpath = val
		case "image-subpath":
			if m.ImageOptions == nil {
				m.ImageOptions = &mount.ImageOptions{}
			}
			m.ImageOptions.Subpath = val
		case "volume-nocopy":
			if volOpts().NoCopy, err = mountBool(key, val, hasValue); err != nil {
				return m, err
			}
		case "volume-label":
			k, v, _ := strings.Cut(val, "=")
			if volOpts().Labels == nil {
				m.VolumeOptions.Labels = map[string]string{}
			}
			m.VolumeOptions.Labels[k] = v
		case "volume-driver":
			driver().Name = val
		case "volume-opt":
			k, v, _ := strings.Cut(val, "=")
			d := driver()
			if d.Options == nil {
				d.Options = map[string]string{}
			}
			d.Options[k] = v
		case "tmpfs-size":
			size, err := units.RAMInBytes(val)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			tmpfsOpts().SizeBytes = size
		case "tmpfs-mode":
			mode, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			tmpfsOpts().Mode = os.FileMode(mode)
		default:
			return m, fmt.Errorf("unknown option '%s' in '%s'", key, field)
		}
	}
	if m.Type == "" {
		return m, fmt.Errorf("type is required")
	}
	for _, x := range []struct {
		prefix string
		t      mount.Type
		set    bool
	}{
		{"bind", mount.TypeBind, m.BindOptions != nil},
		{"volume", mount.TypeVolume, m.VolumeOptions != nil},
		{"tmpfs", mount.TypeTmpfs, m.TmpfsOptions != nil},
		{"image", mount.TypeImage, m.ImageOptions != nil},
	} {
		if x.set && m.Type != x.t {
			return m, fmt.Errorf("cannot mix '%s-*' options with mount type '%s'", x.prefix, m.Type)
		}
	}
	if bo := m.BindOptions; bo != nil {
		if bo.ReadOnlyNonRecursive && !m.ReadOnly {
			return m, fmt.Errorf("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction")
		}
		if bo.ReadOnlyForceRecursive && !m.ReadOnly {
			return m, fmt.Errorf("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction")
		}
	}
	return m, nil
}

func mountBool(key, val string, hasValue bool) (bool, error) {
	if !hasValue {
		return true, nil
	}
	switch val {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf(`invalid value for '%s': invalid boolean value (%q): must be one of "true", "1", "false", or "0" (default "true")`, key, val)
}

// mounts fills the mount options of hc and cfg from o.
func (o *Options) mounts(cfg *container.Config, hc *container.HostConfig) error {
	binds, anon, err := volumes(o.Volumes)
	if err != nil {
		return err
	}
	hc.Binds, cfg.Volumes = binds, anon
	for _, v := range o.Mounts {
		m, err := ParseMount(v)
		if err != nil {
			return fmt.Errorf("invalid argument %q for \"--mount\" flag: %w", v, err)
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	hc.VolumesFrom = o.VolumesFrom
	hc.VolumeDriver = o.VolumeDriver
	if len(o.Tmpfs) > 0 {
		hc.Tmpfs = map[string]string{}
		for _, t := range o.Tmpfs {
			path, opts, _ := strings.Cut(t, ":")
			hc.Tmpfs[path] = opts
		}
	}
	return nil
}
