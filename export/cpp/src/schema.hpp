// Validation of a JSON document against a JSON Schema (the subset of draft 2020-12 that edgesr's published
// sidecar schema, edgesr/artifacts/sidecar.schema.json, uses). An application validates a sidecar before it
// trusts its numbers: sizes, scale and value ranges steer how much memory it allocates and how it converts pixels.
#pragma once

#include <string>
#include <vector>

#include "json.hpp"

namespace edgesr {

// Keywords: type, enum, const, required, properties, additionalProperties (boolean), items, minItems, maxItems,
// minimum, maximum, minLength, maxLength, pattern, anyOf, $ref ("#/$defs/NAME"); annotations ($schema, $id,
// title, description, $defs) are ignored. Another keyword throws std::runtime_error: a schema this validator does
// not fully understand is not silently half-checked.
// Returns the problems, each "JSON-pointer: message" ("/min_size: 100000 is greater than the maximum 4096");
// empty when the document is valid.
std::vector<std::string> validate_against_schema(const Json& schema, const Json& document);

// Reads both files and validates; throws std::runtime_error for unreadable files or invalid JSON.
std::vector<std::string> validate_file_against_schema(const std::string& schema_path, const std::string& json_path);

}  // namespace edgesr
