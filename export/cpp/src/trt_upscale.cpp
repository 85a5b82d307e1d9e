// edgesr_trt_upscale ENGINE IN.png OUT.png [--tile N] [--halo N] [--device N]
//
// Loads a TensorRT engine built by `edgesr export MODEL --format trt` and its sidecar (ENGINE.json),
// checks the TensorRT version and GPU against the sidecar, and upscales a PNG tile by tile, every tile inside
// the engine's optimization profile. TensorRT 10.x/11.x C++ API: createInferRuntime -> deserializeCudaEngine ->
// createExecutionContext -> setInputShape -> setTensorAddress -> enqueueV3.
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "png_io.hpp"
#include "sidecar.hpp"
#include "tiling.hpp"

namespace {

class Logger : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << "\n";
    }
};

void check_cuda(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// IEEE half <-> float on the host (round to nearest even), so no CUDA half headers are needed on the host side.
std::uint16_t float_to_half(float f) {
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    std::uint32_t sign = (x >> 16) & 0x8000u;
    std::int32_t exp = static_cast<std::int32_t>((x >> 23) & 0xFF) - 127 + 15;
    std::uint32_t mant = x & 0x7FFFFFu;
    if (((x >> 23) & 0xFF) == 0xFF) return static_cast<std::uint16_t>(sign | 0x7C00u | (mant ? 0x200u : 0));
    if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7C00u);
    if (exp <= 0) {
        if (exp < -10) return static_cast<std::uint16_t>(sign);
        mant |= 0x800000u;
        std::uint32_t shift = static_cast<std::uint32_t>(14 - exp);
        std::uint32_t half = mant >> shift;
        std::uint32_t rest = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1u))) ++half;
        return static_cast<std::uint16_t>(sign | half);
    }
    std::uint32_t half = sign | (static_cast<std::uint32_t>(exp) << 10) | (mant >> 13);
    std::uint32_t rest = mant & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
    return static_cast<std::uint16_t>(half);
}

float half_to_float(std::uint16_t h) {
    std::uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FFu, x;
    if (exp == 0) {
        if (mant == 0) {
            x = sign;
        } else {
            exp = 127 - 15 + 1;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                --exp;
            }
            x = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
        }
    } else if (exp == 31) {
        x = sign | 0x7F800000u | (mant << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

std::size_t element_size(nvinfer1::DataType t) {
    switch (t) {
        case nvinfer1::DataType::kFLOAT: return 4;
        case nvinfer1::DataType::kHALF: return 2;
        case nvinfer1::DataType::kUINT8: return 1;
        default: throw std::runtime_error("unsupported engine I/O type (float32, float16 or uint8 expected)");
    }
}

struct DeviceBuffer {
    void* ptr = nullptr;
    std::size_t bytes = 0;
    void ensure(std::size_t n) {
        if (n <= bytes) return;
        if (ptr) cudaFree(ptr);
        check_cuda(cudaMalloc(&ptr, n), "cudaMalloc");
        bytes = n;
    }
    ~DeviceBuffer() {
        if (ptr) cudaFree(ptr);
    }
};

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 4) {
            std::cerr << "usage: edgesr_trt_upscale ENGINE IN.png OUT.png [--tile N] [--halo N] [--device N]\n";
            return 2;
        }
        std::string engine_path = argv[1], in_path = argv[2], out_path = argv[3];
        int tile = 256, halo = -1, device = 0;
        for (int i = 4; i + 1 < argc; i += 2) {
            std::string flag = argv[i];
            int value = std::stoi(argv[i + 1]);
            if (flag == "--tile") tile = value;
            else if (flag == "--halo") halo = value;
            else if (flag == "--device") device = value;
            else throw std::runtime_error("unknown option " + flag);
        }
        edgesr::Sidecar side = edgesr::read_sidecar(edgesr::sidecar_path_for(engine_path));
        if (halo < 0) halo = side.halo;

        // The engine only loads in the TensorRT version that built it, on a GPU of the same architecture.
        check_cuda(cudaSetDevice(device), "cudaSetDevice");
        cudaDeviceProp prop{};
        check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
        std::string cc = std::to_string(prop.major) + "." + std::to_string(prop.minor);
        std::string here = std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "." +
                           std::to_string(NV_TENSORRT_PATCH);
        if (!side.trt_version.empty() && side.trt_version.rfind(here, 0) != 0)
            throw std::runtime_error("the engine was built with TensorRT " + side.trt_version +
                                     " but this program uses TensorRT " + here + ": rebuild the engine here");
        if (!side.trt_compute_capability.empty() && side.trt_hardware_compat != "AMPERE_PLUS" &&
            side.trt_compute_capability != cc)
            throw std::runtime_error("the engine was built for compute capability " + side.trt_compute_capability +
                                     " (" + side.trt_gpu_name + ") but " + prop.name + " has " + cc);

        Logger logger;
        std::vector<char> plan = read_file(engine_path);
        std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
        std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(plan.data(), plan.size())};
        if (!engine) throw std::runtime_error("TensorRT could not deserialize " + engine_path);
        std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};
        if (!context) throw std::runtime_error("TensorRT could not create an execution context");
        const char* in_name = side.input.name.c_str();
        const char* out_name = side.output.name.c_str();
        nvinfer1::DataType in_type = engine->getTensorDataType(in_name), out_type = engine->getTensorDataType(out_name);
        nvinfer1::Dims lo = engine->getProfileShape(in_name, 0, nvinfer1::OptProfileSelector::kMIN);
        nvinfer1::Dims hi = engine->getProfileShape(in_name, 0, nvinfer1::OptProfileSelector::kMAX);
        if (lo.nbDims != 4 || hi.nbDims != 4) {  // a static engine: its own shape is min and max
            lo = hi = engine->getTensorShape(in_name);
        }
        edgesr::TilePlan plan_tiles = edgesr::fit_tile(tile, halo, static_cast<int>(lo.d[2]), static_cast<int>(lo.d[3]),
                                                       static_cast<int>(hi.d[2]), static_cast<int>(hi.d[3]),
                                                       side.alignment, side.min_size);
        if (!plan_tiles.note.empty()) std::cerr << plan_tiles.note << "\n";

        cudaStream_t stream;
        check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
        DeviceBuffer d_in, d_out;
        std::vector<std::uint8_t> host_in, host_out;
        const double in_max = side.input.range_max, out_max = side.output.range_max;
        edgesr::SRFunction run = [&](const std::vector<float>& x, int h, int w, std::vector<float>& y) {
            const std::size_t n = static_cast<std::size_t>(3) * h * w;
            host_in.resize(n * element_size(in_type));
            for (std::size_t i = 0; i < n; ++i) {
                float v = static_cast<float>(x[i] * in_max);
                if (in_type == nvinfer1::DataType::kUINT8)
                    host_in[i] = static_cast<std::uint8_t>(std::lround(std::fmin(255.f, std::fmax(0.f, v))));
                else if (in_type == nvinfer1::DataType::kHALF)
                    reinterpret_cast<std::uint16_t*>(host_in.data())[i] = float_to_half(v);
                else
                    reinterpret_cast<float*>(host_in.data())[i] = v;
            }
            d_in.ensure(host_in.size());
            check_cuda(cudaMemcpyAsync(d_in.ptr, host_in.data(), host_in.size(), cudaMemcpyHostToDevice, stream), "h2d");
            if (!context->setInputShape(in_name, nvinfer1::Dims4{1, 3, h, w}))
                throw std::runtime_error("input shape outside the engine profile");
            nvinfer1::Dims od = context->getTensorShape(out_name);
            std::size_t m = 1;
            for (int i = 0; i < od.nbDims; ++i) m *= static_cast<std::size_t>(od.d[i]);
            if (m != y.size()) throw std::runtime_error("unexpected output size from the engine");
            d_out.ensure(m * element_size(out_type));
            context->setTensorAddress(in_name, d_in.ptr);
            context->setTensorAddress(out_name, d_out.ptr);
            if (!context->enqueueV3(stream)) throw std::runtime_error("enqueueV3 failed");
            host_out.resize(m * element_size(out_type));
            check_cuda(cudaMemcpyAsync(host_out.data(), d_out.ptr, host_out.size(), cudaMemcpyDeviceToHost, stream), "d2h");
            check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
            for (std::size_t i = 0; i < m; ++i) {
                float v = out_type == nvinfer1::DataType::kUINT8 ? host_out[i]
                        : out_type == nvinfer1::DataType::kHALF ? half_to_float(reinterpret_cast<std::uint16_t*>(host_out.data())[i])
                        : reinterpret_cast<float*>(host_out.data())[i];
                y[i] = static_cast<float>(v / out_max);
            }
        };
        edgesr::ImageRGB8 lr = edgesr::read_png_rgb8(in_path);
        int tiles = 0;
        edgesr::ImageRGB8 sr = edgesr::upscale_tiled(lr, side.scale, plan_tiles.config, run, &tiles);
        cudaStreamDestroy(stream);
        edgesr::write_png_rgb8(out_path, sr);
        std::cout << in_path << " " << lr.width << "x" << lr.height << " -> " << out_path << " " << sr.width << "x"
                  << sr.height << " (" << tiles << " tile(s), TensorRT " << here << ", " << prop.name << ")\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
