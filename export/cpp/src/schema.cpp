#include "schema.hpp"

#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace edgesr {

namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

std::string short_text(const Json& v) {
    switch (v.type()) {
        case Json::Type::Null: return "null";
        case Json::Type::Bool: return v.boolean() ? "true" : "false";
        case Json::Type::Number: {
            std::ostringstream out;
            out << v.number();
            return out.str();
        }
        case Json::Type::String: return "\"" + v.str().substr(0, 40) + (v.str().size() > 40 ? "...\"" : "\"");
        case Json::Type::Array: return "an array";
        case Json::Type::Object: return "an object";
    }
    return "?";
}

bool has_type(const Json& v, const std::string& type) {
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "boolean") return v.is_bool();
    if (type == "null") return v.is_null();
    if (type == "number") return v.is_number();
    if (type == "integer") return v.is_number() && std::isfinite(v.number()) && std::floor(v.number()) == v.number();
    throw std::runtime_error("schema: unknown type \"" + type + "\"");
}

std::size_t utf8_length(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

class Validator {
public:
    explicit Validator(const Json& root) : root_(root) {}

    void check(const Json& schema, const Json& v, const std::string& where, std::vector<std::string>& errors,
               int depth = 0) const {
        if (depth > 64) throw std::runtime_error("schema: $ref nesting too deep");
        if (schema.is_bool()) {
            if (!schema.boolean()) errors.push_back(at(where) + "no value is allowed here");
            return;
        }
        if (!schema.is_object()) throw std::runtime_error("schema: a schema must be an object or a boolean");
        static const std::set<std::string> known = {
            "$schema", "$id", "title", "description", "$defs", "type", "enum", "const", "required", "properties",
            "additionalProperties", "items", "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength",
            "pattern", "anyOf", "$ref"};
        for (const auto& kv : schema.object())
            if (!known.count(kv.first)) throw std::runtime_error("schema: unsupported keyword \"" + kv.first + "\"");

        if (schema.has("$ref")) check(resolve(schema["$ref"].str()), v, where, errors, depth + 1);
        if (schema.has("type")) {
            const Json& t = schema["type"];
            bool ok = false;
            std::string names;
            if (t.is_string()) {
                ok = has_type(v, t.str());
                names = t.str();
            } else {
                for (const Json& one : t.array()) {
                    ok = ok || has_type(v, one.str());
                    names += (names.empty() ? "" : " or ") + one.str();
                }
            }
            if (!ok) {
                errors.push_back(at(where) + short_text(v) + " is not of type " + names);
                return;  // the other keywords would only repeat the problem
            }
        }
        if (schema.has("enum")) {
            bool found = false;
            for (const Json& option : schema["enum"].array()) found = found || option == v;
            if (!found) errors.push_back(at(where) + short_text(v) + " is not one of the allowed values");
        }
        if (schema.has("const") && !(schema["const"] == v))
            errors.push_back(at(where) + short_text(v) + " is not " + short_text(schema["const"]));
        if (v.is_number()) {
            if (schema.has("minimum") && v.number() < schema["minimum"].number())
                errors.push_back(at(where) + short_text(v) + " is less than the minimum " + short_text(schema["minimum"]));
            if (schema.has("maximum") && v.number() > schema["maximum"].number())
                errors.push_back(at(where) + short_text(v) + " is greater than the maximum " +
                                 short_text(schema["maximum"]));
        }
        if (v.is_string()) {
            std::size_t n = utf8_length(v.str());
            if (schema.has("minLength") && n < static_cast<std::size_t>(schema["minLength"].integer()))
                errors.push_back(at(where) + short_text(v) + " is too short");
            if (schema.has("maxLength") && n > static_cast<std::size_t>(schema["maxLength"].integer()))
                errors.push_back(at(where) + short_text(v) + " is too long");
            if (schema.has("pattern") && !std::regex_search(v.str(), std::regex(schema["pattern"].str())))
                errors.push_back(at(where) + short_text(v) + " does not match " + schema["pattern"].str());
        }
        if (v.is_array()) {
            const auto& items = v.array();
            if (schema.has("minItems") && items.size() < static_cast<std::size_t>(schema["minItems"].integer()))
                errors.push_back(at(where) + "needs at least " + short_text(schema["minItems"]) + " items");
            if (schema.has("maxItems") && items.size() > static_cast<std::size_t>(schema["maxItems"].integer()))
                errors.push_back(at(where) + "has more than " + short_text(schema["maxItems"]) + " items");
            if (schema.has("items"))
                for (std::size_t i = 0; i < items.size(); ++i)
                    check(schema["items"], items[i], where + "/" + std::to_string(i), errors, depth + 1);
        }
        if (v.is_object()) {
            if (schema.has("required"))
                for (const Json& key : schema["required"].array())
                    if (!v.has(key.str())) errors.push_back(at(where) + "the required field \"" + key.str() + "\" is missing");
            const Json& props = schema["properties"];
            for (const auto& kv : v.object()) {
                if (props.has(kv.first)) {
                    check(props[kv.first], kv.second, where + "/" + kv.first, errors, depth + 1);
                } else if (schema.has("additionalProperties")) {
                    check(schema["additionalProperties"], kv.second, where + "/" + kv.first, errors, depth + 1);
                }
            }
        }
        if (schema.has("anyOf")) {
            bool any = false;
            for (const Json& option : schema["anyOf"].array()) {
                std::vector<std::string> sub;
                check(option, v, where, sub, depth + 1);
                any = any || sub.empty();
            }
            if (!any) errors.push_back(at(where) + short_text(v) + " matches none of the allowed forms");
        }
    }

private:
    const Json& root_;

    static std::string at(const std::string& where) { return (where.empty() ? "/" : where) + ": "; }

    const Json& resolve(const std::string& ref) const {
        const std::string prefix = "#/$defs/";
        if (ref.compare(0, prefix.size(), prefix) != 0)
            throw std::runtime_error("schema: only local \"#/$defs/NAME\" references are supported, got " + ref);
        const Json& target = root_["$defs"][ref.substr(prefix.size())];
        if (target.is_null()) throw std::runtime_error("schema: unresolved reference " + ref);
        return target;
    }
};

}  // namespace

std::vector<std::string> validate_against_schema(const Json& schema, const Json& document) {
    std::vector<std::string> errors;
    Validator(schema).check(schema, document, "", errors);
    return errors;
}

std::vector<std::string> validate_file_against_schema(const std::string& schema_path, const std::string& json_path) {
    Json schema = Json::parse(read_text(schema_path));
    Json document;
    try {
        document = Json::parse(read_text(json_path));
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(json_path + ": " + e.what());
    }
    return validate_against_schema(schema, document);
}

}  // namespace edgesr
