// Unit test of the parts of the example that need no GPU: sidecar reading, PNG I/O, tiling.
// Usage: edgesr_core_test DATA_DIR TMP_DIR
#include <cmath>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "json.hpp"
#include "png_io.hpp"
#include "sidecar.hpp"
#include "tiling.hpp"

namespace {
int failures = 0, checks = 0;
void check(bool ok, const std::string& what) {
    ++checks;
    if (!ok) {
        ++failures;
        std::cerr << "FAILED: " << what << "\n";
    }
}
template <class F>
void check_throws(F f, const std::string& what, const std::string& needle = "") {
    ++checks;
    try {
        f();
    } catch (const std::exception& e) {
        if (needle.empty() || std::string(e.what()).find(needle) != std::string::npos) return;
        std::cerr << "FAILED: " << what << ": wrong message: " << e.what() << "\n";
        ++failures;
        return;
    }
    ++failures;
    std::cerr << "FAILED: " << what << ": no exception\n";
}

// Fake models on planar float 0..1: nearest x2, and a 3x3 box blur (clamped at the tile edge) then nearest x2.
void nearest2(const std::vector<float>& in, int h, int w, std::vector<float>& out) {
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 2 * h; ++y)
            for (int x = 0; x < 2 * w; ++x)
                out[(static_cast<std::size_t>(c) * 2 * h + y) * 2 * w + x] = in[(static_cast<std::size_t>(c) * h + y / 2) * w + x / 2];
}
void blur_nearest2(const std::vector<float>& in, int h, int w, std::vector<float>& out) {
    std::vector<float> b(in.size());
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                float s = 0;
                for (int dy = -1; dy <= 1; ++dy)
                    for (int dx = -1; dx <= 1; ++dx) {
                        int yy = std::min(h - 1, std::max(0, y + dy)), xx = std::min(w - 1, std::max(0, x + dx));
                        s += in[(static_cast<std::size_t>(c) * h + yy) * w + xx];
                    }
                b[(static_cast<std::size_t>(c) * h + y) * w + x] = s / 9.f;
            }
    nearest2(b, h, w, out);
}

edgesr::ImageRGB8 pattern(int w, int h) {
    edgesr::ImageRGB8 img;
    img.width = w;
    img.height = h;
    img.pixels.resize(static_cast<std::size_t>(w) * h * 3);
    for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>((i * 37 + i / 7) % 251);
    return img;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: edgesr_core_test DATA_DIR TMP_DIR\n";
        return 2;
    }
    std::string data = argv[1], tmp = argv[2];

    // ---- JSON and sidecar
    edgesr::Json j = edgesr::Json::parse(R"({"a": [1, 2.5, -3e2], "s": "x\"y\u00e9", "t": true, "n": null, "o": {}})");
    check(j["a"].size() == 3 && j["a"][2].number() == -300.0, "json numbers");
    check(j["s"].str() == "x\"y\xC3\xA9", "json string escapes");
    check(j["t"].boolean() && j["n"].is_null() && j["missing"].is_null() && j["o"].is_object(), "json literals");
    check_throws([] { edgesr::Json::parse("{\"a\": }"); }, "json error", "byte");
    check_throws([] { edgesr::Json::parse("[1, 2] x"); }, "json trailing", "trailing");

    edgesr::Sidecar s = edgesr::read_sidecar(data + "/rlfn_x4_fp16_trt.engine.json");
    check(s.scale == 4 && s.artifact_format == "tensorrt" && s.artifact_file == "rlfn_x4_fp16_trt.engine", "sidecar basics");
    check(s.input.name == "input" && s.output.name == "output" && s.input.dtype == "float32", "sidecar tensors");
    check(s.input.range_max == 1.0 && s.output.range_max == 1.0, "sidecar value ranges");
    check(s.profile_min[2] == 15 && s.profile_opt[2] == 256 && s.profile_max[3] == 1024, "sidecar profile");
    check(s.min_size == 15 && s.halo == 32 && s.alignment == 1, "sidecar geometry");
    check(s.trt_version == "10.13.0.35" && s.trt_compute_capability == "8.9" && s.trt_precision == "fp16",
          "sidecar tensorrt block");
    check(edgesr::sidecar_path_for("dir/m.engine") == "dir/m.engine.json" &&
              edgesr::sidecar_path_for("a.b/m") == "a.b/m.json",
          "sidecar path");
    check_throws([] { edgesr::parse_sidecar(R"({"schema_version": "2.0", "scale": 4})"); }, "schema major", "2.0");
    check_throws([] { edgesr::parse_sidecar(R"({"schema_version": "1.0", "inputs": []})"); }, "missing scale", "scale");

    // ---- tiling plan within an engine profile
    edgesr::TilePlan p = edgesr::fit_tile(256, 32, 15, 15, 128, 128, 1, 15);
    check(p.config.tile == 64 && p.config.min_size == 15 && !p.note.empty(), "fit_tile clamps to the profile");
    check(edgesr::fit_tile(48, 8, 1, 1, 256, 256, 4, 1).config.tile == 48, "fit_tile keeps a fitting tile");
    check(edgesr::fit_tile(0, 0, 1, 1, 0, 0, 1, 1).config.tile == 0, "no maximum: no tiling");
    check_throws([] { edgesr::fit_tile(64, 40, 1, 1, 64, 64, 1, 1); }, "halo too large", "halo");
    auto sp = edgesr::spans(10, 4);
    check(sp.size() == 3 && sp[0] == std::make_pair(0, 4) && sp[2] == std::make_pair(8, 10), "spans");
    std::vector<float> small = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};  // 3 x 2 x 2
    std::vector<float> padded = edgesr::pad_planar(small, 2, 2, 3, 4);
    check(padded.size() == 36 && padded[2] == 0.f && padded[3] == 1.f && padded[8] == 0.f, "mirror padding");

    // ---- tiled == untiled for local models
    edgesr::ImageRGB8 lr = pattern(37, 29);
    int tiles = 0;
    edgesr::ImageRGB8 whole = edgesr::upscale_tiled(lr, 2, {0, 0, 1, 1}, nearest2, &tiles);
    check(tiles == 1 && whole.width == 74 && whole.height == 58, "whole-image run");
    edgesr::ImageRGB8 tiled = edgesr::upscale_tiled(lr, 2, {16, 0, 1, 1}, nearest2, &tiles);
    check(tiles == 6 && tiled.pixels == whole.pixels, "nearest x2: tiles without halo equal the whole image");
    edgesr::ImageRGB8 bw = edgesr::upscale_tiled(lr, 2, {0, 0, 1, 1}, blur_nearest2);
    edgesr::ImageRGB8 bt = edgesr::upscale_tiled(lr, 2, {10, 1, 1, 1}, blur_nearest2, &tiles);
    check(tiles == 12 && bt.pixels == bw.pixels, "3x3 blur: halo 1 makes tiles equal the whole image");
    edgesr::ImageRGB8 padded_run = edgesr::upscale_tiled(lr, 2, {16, 2, 8, 24}, nearest2);
    check(padded_run.pixels == whole.pixels, "align/min-size padding is cropped away");

    // ---- PNG round trip
    std::string png = tmp + "/edgesr_core_test.png";
    edgesr::write_png_rgb8(png, lr);
    edgesr::ImageRGB8 back = edgesr::read_png_rgb8(png);
    check(back.width == 37 && back.height == 29 && back.pixels == lr.pixels, "PNG round trip");
    std::remove(png.c_str());
    check_throws([&] { edgesr::read_png_rgb8(data + "/rlfn_x4_fp16_trt.engine.json"); }, "not a PNG", "not a PNG");

    std::cout << (checks - failures) << " passed, " << failures << " failed\n";
    return failures ? 1 : 0;
}
