// The fields of an edgesr sidecar (<name>.engine.json beside <name>.engine) that an embedding application needs.
// Validate the file against the published schema first (schema.hpp): this reader trusts the numbers it reads.
#pragma once

#include <array>
#include <string>

namespace edgesr {

struct TensorInfo {
    std::string name;
    std::string dtype;      // "float32" | "float16" | "uint8"
    double range_max = 1.0; // values are 0..range_max (1 for float01, 255 for float255/uint8)
};

struct Sidecar {
    int schema_major = 1;
    std::string artifact_file;   // the engine's file name
    std::string artifact_format; // "tensorrt" for engines
    int scale = 0;
    TensorInfo input, output;
    std::array<int, 4> profile_min{}, profile_opt{}, profile_max{};  // [N, C, H, W]; zeros when absent
    int alignment = 1;
    int min_size = 1;
    int halo = 16;
    // TensorRT block (empty when the sidecar belongs to an ONNX artifact)
    std::string trt_version;             // e.g. "10.13.0.35"
    std::string trt_compute_capability;  // e.g. "8.9"
    std::string trt_gpu_name;
    std::string trt_precision;           // "fp16" | "fp32" | "int8"
    std::string trt_hardware_compat;     // "NONE" | "AMPERE_PLUS"
};

Sidecar parse_sidecar(const std::string& json_text);  // throws std::runtime_error naming the missing field
Sidecar read_sidecar(const std::string& path);         // reads the file, then parse_sidecar
std::string sidecar_path_for(const std::string& artifact_path);  // DIR/<name>.engine -> DIR/<name>.engine.json

}  // namespace edgesr
