#include "sidecar.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "json.hpp"

namespace edgesr {

namespace {

int to_int(const Json& v, const std::string& what) {
    if (!v.is_number()) throw std::runtime_error("sidecar: " + what + " must be a number");
    return static_cast<int>(v.integer());
}

double range_max(const Json& tensor, double fallback) {
    const Json& r = tensor["value_range"];
    if (r.is_array() && r.size() == 2 && r[1].is_number()) return r[1].number();
    return fallback;
}

TensorInfo tensor_info(const Json& list, const std::string& what, const std::string& io) {
    const Json& t = list[0];
    if (!t.is_object()) throw std::runtime_error("sidecar: no " + what + " tensor");
    TensorInfo info;
    info.name = t.str_or("name", "");
    info.dtype = t.str_or("dtype", "float32");
    info.range_max = range_max(t, io == "float01" ? 1.0 : 255.0);
    if (info.name.empty()) throw std::runtime_error("sidecar: the " + what + " tensor has no name");
    return info;
}

std::array<int, 4> dims(const Json& v) {
    std::array<int, 4> out{};
    if (v.is_array() && v.size() == 4)
        for (std::size_t i = 0; i < 4; ++i) out[i] = to_int(v[i], "a profile dimension");
    return out;
}

}  // namespace

Sidecar parse_sidecar(const std::string& json_text) {
    Json doc = Json::parse(json_text);
    if (!doc.is_object()) throw std::runtime_error("sidecar: not a JSON object");
    Sidecar s;
    std::string version = doc.str_or("schema_version", "");
    if (version.empty()) throw std::runtime_error("sidecar: missing schema_version");
    s.schema_major = std::stoi(version.substr(0, version.find('.')));
    if (s.schema_major != 1)
        throw std::runtime_error("sidecar: schema_version " + version + " is not supported (this reader takes 1.x)");
    s.artifact_file = doc["artifact"].str_or("file", "");
    s.artifact_format = doc["artifact"].str_or("format", "");
    if (!doc["scale"].is_number()) throw std::runtime_error("sidecar: missing scale");
    s.scale = to_int(doc["scale"], "scale");
    std::string io = doc["export"].str_or("io", "float01");
    s.input = tensor_info(doc["inputs"], "input", io);
    s.output = tensor_info(doc["outputs"], "output", io);
    const Json& profile = doc["shape_profile"];
    s.profile_min = dims(profile["min"]);
    s.profile_opt = dims(profile["opt"]);
    s.profile_max = dims(profile["max"]);
    s.alignment = static_cast<int>(doc.number_or("alignment", 1));
    s.min_size = static_cast<int>(doc.number_or("min_size", 1));
    s.halo = static_cast<int>(doc.number_or("halo", 16));
    const Json& trt = doc["tensorrt"];
    if (trt.is_object()) {
        s.trt_version = trt.str_or("version", "");
        s.trt_compute_capability = trt["gpu"].str_or("compute_capability", "");
        s.trt_gpu_name = trt["gpu"].str_or("name", "");
        s.trt_precision = trt.str_or("precision", "");
        s.trt_hardware_compat = trt["builder_options"].str_or("hardware_compatibility_level", "NONE");
    }
    return s;
}

Sidecar read_sidecar(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("sidecar not found: " + path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    try {
        return parse_sidecar(buffer.str());
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(path + ": " + e.what());
    }
}

std::string sidecar_path_for(const std::string& artifact_path) { return artifact_path + ".json"; }

}  // namespace edgesr
