// Minimal JSON reader for edgesr sidecars (no dependency; the sidecar is plain RFC 8259 JSON written by Python).
// Parses the whole document into a small tree; unknown keys are simply ignored by the caller.
#pragma once

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgesr {

class Json {
public:
    enum class Type { Null, Bool, Number, String, Array, Object };

    static Json parse(const std::string& text);  // throws std::runtime_error with the byte offset on bad input

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::Null; }
    bool is_number() const { return type_ == Type::Number; }
    bool is_string() const { return type_ == Type::String; }
    bool is_array() const { return type_ == Type::Array; }
    bool is_object() const { return type_ == Type::Object; }
    bool is_bool() const { return type_ == Type::Bool; }

    double number() const;
    long long integer() const;  // a number that must be integral
    bool boolean() const;
    const std::string& str() const;
    const std::vector<Json>& array() const;
    const std::map<std::string, Json>& object() const;
    std::size_t size() const;

    bool has(const std::string& key) const;
    const Json& operator[](const std::string& key) const;  // a Null value when the key is missing
    const Json& operator[](std::size_t index) const;

    bool operator==(const Json& other) const;  // deep equality (numbers by value: 0 == 0.0)
    bool operator!=(const Json& other) const { return !(*this == other); }

    // Convenience: value at key or a default when missing/null.
    double number_or(const std::string& key, double fallback) const;
    std::string str_or(const std::string& key, const std::string& fallback) const;

private:
    friend class JsonParser;
    Type type_ = Type::Null;
    bool bool_ = false;
    double number_ = 0.0;
    std::string string_;
    std::vector<Json> array_;
    std::map<std::string, Json> object_;
};

}  // namespace edgesr
