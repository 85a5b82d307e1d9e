#include "tiling.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace edgesr {

TilePlan fit_tile(int tile, int halo, int min_h, int min_w, int max_h, int max_w, int align, int min_size) {
    if (tile < 0 || halo < 0 || align < 1) throw std::runtime_error("tile/halo must be >= 0 and align >= 1");
    TilePlan plan;
    plan.config = {tile, halo, align, std::max({min_size, min_h, min_w, 1})};
    if (max_h <= 0 || max_w <= 0) return plan;
    int top = std::min(max_h, max_w);
    if (plan.config.min_size > top)
        throw std::runtime_error("the engine profile's minimum exceeds its maximum in one dimension");
    int largest = (top / align) * align - 2 * halo;
    if (largest < 1)
        throw std::runtime_error("halo " + std::to_string(halo) + " is too large for the engine's maximum input " +
                                 std::to_string(max_h) + "x" + std::to_string(max_w));
    if (tile == 0 || tile > largest) {
        plan.note = "tile " + (tile ? std::to_string(tile) : std::string("none")) + " -> " + std::to_string(largest) +
                    ": the engine accepts inputs up to " + std::to_string(max_h) + "x" + std::to_string(max_w);
        plan.config.tile = largest;
    }
    if (plan.config.tile < halo) throw std::runtime_error("tiles that fit the engine are smaller than the halo");
    return plan;
}

std::vector<std::pair<int, int>> spans(int length, int tile) {
    int n = std::max(1, (length + tile - 1) / tile);
    int step = (length + n - 1) / n;
    std::vector<std::pair<int, int>> out;
    for (int i = 0; i < n; ++i) out.emplace_back(i * step, std::min(length, i * step + step));
    return out;
}

namespace {
// Mirror index into [0, n): reflection without repeating the edge (numpy "reflect"), periodic for large pads.
int mirror(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    return i < n ? i : period - i;
}
}  // namespace

std::vector<float> pad_planar(const std::vector<float>& x, int h, int w, int th, int tw) {
    if (th == h && tw == w) return x;
    std::vector<float> out(static_cast<std::size_t>(3) * th * tw);
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < th; ++y)
            for (int xx = 0; xx < tw; ++xx)
                out[(static_cast<std::size_t>(c) * th + y) * tw + xx] =
                    x[(static_cast<std::size_t>(c) * h + mirror(y, h)) * w + mirror(xx, w)];
    return out;
}

ImageRGB8 upscale_tiled(const ImageRGB8& lr, int scale, const TileConfig& config, const SRFunction& fn, int* tiles_run) {
    if (scale < 1) throw std::runtime_error("scale must be >= 1");
    if (config.tile && config.tile < config.halo) throw std::runtime_error("tile size is smaller than the halo");
    const int h = lr.height, w = lr.width;
    ImageRGB8 out;
    out.width = w * scale;
    out.height = h * scale;
    out.pixels.assign(static_cast<std::size_t>(out.width) * out.height * 3, 0);
    const bool whole = config.tile == 0 || (h <= config.tile && w <= config.tile);
    std::vector<std::pair<int, int>> ys = whole ? std::vector<std::pair<int, int>>{{0, h}} : spans(h, config.tile);
    std::vector<std::pair<int, int>> xs = whole ? std::vector<std::pair<int, int>>{{0, w}} : spans(w, config.tile);
    const int halo = whole ? 0 : config.halo;
    int calls = 0;
    std::vector<float> in, result;
    for (auto [y0, y1] : ys) {
        for (auto [x0, x1] : xs) {
            int iy0 = std::max(0, y0 - halo), iy1 = std::min(h, y1 + halo);
            int ix0 = std::max(0, x0 - halo), ix1 = std::min(w, x1 + halo);
            int th = iy1 - iy0, tw = ix1 - ix0;
            in.assign(static_cast<std::size_t>(3) * th * tw, 0.f);
            for (int y = 0; y < th; ++y)
                for (int x = 0; x < tw; ++x)
                    for (int c = 0; c < 3; ++c)
                        in[(static_cast<std::size_t>(c) * th + y) * tw + x] =
                            lr.pixels[(static_cast<std::size_t>(iy0 + y) * w + ix0 + x) * 3 + c] / 255.0f;
            int ph = std::max(config.min_size, (th + config.align - 1) / config.align * config.align);
            int pw = std::max(config.min_size, (tw + config.align - 1) / config.align * config.align);
            std::vector<float> padded = pad_planar(in, th, tw, ph, pw);
            result.assign(static_cast<std::size_t>(3) * ph * scale * pw * scale, 0.f);
            fn(padded, ph, pw, result);
            ++calls;
            const int ow = pw * scale, oh = ph * scale;
            const int oy = (y0 - iy0) * scale, ox = (x0 - ix0) * scale;
            for (int y = 0; y < (y1 - y0) * scale; ++y)
                for (int x = 0; x < (x1 - x0) * scale; ++x)
                    for (int c = 0; c < 3; ++c) {
                        float v = result[(static_cast<std::size_t>(c) * oh + oy + y) * ow + ox + x];
                        v = std::min(1.0f, std::max(0.0f, v)) * 255.0f;
                        out.pixels[(static_cast<std::size_t>(y0 * scale + y) * out.width + x0 * scale + x) * 3 + c] =
                            static_cast<std::uint8_t>(std::lround(v));
                    }
        }
    }
    if (tiles_run) *tiles_run = calls;
    return out;
}

}  // namespace edgesr
