package daemon

import (
	"fmt"
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/validation"

	"github.com/godwit-project/godwit/api"
)

// sizePattern is what api.ParseSize reads: a number, then a unit or none.
// With it in api.Size's schema, a body's bad size is refused while it is
// validated, with its field's path (`memory: "lots" is not a size...`),
// not later by UnmarshalText, whose error names no field (a form cannot
// show it next to its input).
const sizePattern = `^\s*([0-9]+\.?[0-9]*|\.[0-9]+)\s*([bB]|[kKmMgGtTpP]([iI]?[bB])?)?\s*$`

// sizeSchema stands in for api.Size in the API's schemas (api/ is
// stdlib-only, so it cannot provide its own).
type sizeSchema struct{}

func (sizeSchema) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{
		Type:        huma.TypeString,
		Pattern:     sizePattern,
		Description: "A size: a number and a unit (B, KiB, MiB, GiB, TiB or kB, MB, GB, TB); a bare number is bytes.",
		Examples:    []any{"512MiB"},
	}
}

const sizeWanted = "a number and a unit (B, KiB, MiB, GiB, TiB or kB, MB, GB, TB), e.g. 512MiB"

// sizeMessage is huma's message for a value that is not a size; sizeError
// says instead what api.ParseSize says of it (as the CLI would). (No
// PatternDescription: it would be emitted as an OpenAPI property that
// Redocly's linter refuses.)
var sizeMessage = huma.ErrorFormatter(validation.MsgExpectedMatchPattern, sizePattern)

func sizeError(value any) string {
	if _, err := api.ParseSize(fmt.Sprint(value)); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%q is not a size: give %s", fmt.Sprint(value), sizeWanted)
}

// useSizeSchema makes r describe (and validate) api.Size with sizeSchema.
func useSizeSchema(r huma.Registry) {
	r.RegisterTypeAlias(reflect.TypeFor[api.Size](), reflect.TypeFor[sizeSchema]())
}
