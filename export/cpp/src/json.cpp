#include "json.hpp"

#include <cmath>
#include <cstdlib>

namespace edgesr {

namespace {
const Json& null_value() {
    static const Json value;
    return value;
}
}  // namespace

class JsonParser {
public:
    explicit JsonParser(const std::string& text) : s_(text) {}

    Json document() {
        Json value = parse_value(0);
        skip_ws();
        if (pos_ != s_.size()) fail("trailing characters");
        return value;
    }

private:
    const std::string& s_;
    std::size_t pos_ = 0;

    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("JSON: " + what + " at byte " + std::to_string(pos_));
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
    }
    char peek() {
        skip_ws();
        if (pos_ >= s_.size()) fail("unexpected end");
        return s_[pos_];
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    bool literal(const char* word) {
        std::size_t n = std::char_traits<char>::length(word);
        if (s_.compare(pos_, n, word) == 0) {
            pos_ += n;
            return true;
        }
        return false;
    }

    Json parse_value(int depth) {
        if (depth > 128) fail("nesting too deep");
        Json v;
        char c = peek();
        if (c == '{') {
            v.type_ = Json::Type::Object;
            ++pos_;
            if (peek() == '}') {
                ++pos_;
                return v;
            }
            for (;;) {
                if (peek() != '"') fail("expected a key");
                std::string key = parse_string();
                expect(':');
                v.object_[key] = parse_value(depth + 1);
                char d = peek();
                ++pos_;
                if (d == '}') break;
                if (d != ',') fail("expected ',' or '}'");
            }
        } else if (c == '[') {
            v.type_ = Json::Type::Array;
            ++pos_;
            if (peek() == ']') {
                ++pos_;
                return v;
            }
            for (;;) {
                v.array_.push_back(parse_value(depth + 1));
                char d = peek();
                ++pos_;
                if (d == ']') break;
                if (d != ',') fail("expected ',' or ']'");
            }
        } else if (c == '"') {
            v.type_ = Json::Type::String;
            v.string_ = parse_string();
        } else if (literal("true")) {
            v.type_ = Json::Type::Bool;
            v.bool_ = true;
        } else if (literal("false")) {
            v.type_ = Json::Type::Bool;
        } else if (literal("null")) {
            v.type_ = Json::Type::Null;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const char* start = s_.c_str() + pos_;
            char* end = nullptr;
            v.number_ = std::strtod(start, &end);
            if (end == start) fail("bad number");
            pos_ += static_cast<std::size_t>(end - start);
            v.type_ = Json::Type::Number;
        } else {
            fail(std::string("unexpected character '") + c + "'");
        }
        return v;
    }

    static void append_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }
    unsigned hex4() {
        if (pos_ + 4 > s_.size()) fail("short \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            char h = s_[pos_++];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
            else fail("bad \\u escape");
        }
        return v;
    }
    std::string parse_string() {
        expect('"');
        std::string out;
        while (pos_ < s_.size()) {
            char c = s_[pos_++];
            if (c == '"') return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= s_.size()) break;
            char e = s_[pos_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && pos_ + 1 < s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u') {
                        pos_ += 2;
                        unsigned lo = hex4();
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: fail("bad escape");
            }
        }
        fail("unterminated string");
    }
};

Json Json::parse(const std::string& text) { return JsonParser(text).document(); }

double Json::number() const {
    if (type_ != Type::Number) throw std::runtime_error("JSON: not a number");
    return number_;
}
long long Json::integer() const {
    double v = number();
    if (std::floor(v) != v) throw std::runtime_error("JSON: not an integer");
    return static_cast<long long>(v);
}
bool Json::boolean() const {
    if (type_ != Type::Bool) throw std::runtime_error("JSON: not a boolean");
    return bool_;
}
const std::string& Json::str() const {
    if (type_ != Type::String) throw std::runtime_error("JSON: not a string");
    return string_;
}
const std::vector<Json>& Json::array() const {
    if (type_ != Type::Array) throw std::runtime_error("JSON: not an array");
    return array_;
}
const std::map<std::string, Json>& Json::object() const {
    if (type_ != Type::Object) throw std::runtime_error("JSON: not an object");
    return object_;
}
bool Json::operator==(const Json& other) const {
    if (type_ != other.type_) return false;
    switch (type_) {
        case Type::Null: return true;
        case Type::Bool: return bool_ == other.bool_;
        case Type::Number: return number_ == other.number_;
        case Type::String: return string_ == other.string_;
        case Type::Array: return array_ == other.array_;
        case Type::Object: return object_ == other.object_;
    }
    return false;
}
std::size_t Json::size() const { return type_ == Type::Array ? array_.size() : type_ == Type::Object ? object_.size() : 0; }
bool Json::has(const std::string& key) const { return type_ == Type::Object && object_.count(key) > 0; }
const Json& Json::operator[](const std::string& key) const {
    if (type_ != Type::Object) return null_value();
    auto it = object_.find(key);
    return it == object_.end() ? null_value() : it->second;
}
const Json& Json::operator[](std::size_t index) const {
    if (type_ != Type::Array || index >= array_.size()) return null_value();
    return array_[index];
}
double Json::number_or(const std::string& key, double fallback) const {
    const Json& v = (*this)[key];
    return v.is_number() ? v.number_ : fallback;
}
std::string Json::str_or(const std::string& key, const std::string& fallback) const {
    const Json& v = (*this)[key];
    return v.is_string() ? v.string_ : fallback;
}

}  // namespace edgesr
