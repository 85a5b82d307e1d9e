package org.edgesr.example

import ai.onnxruntime.OnnxJavaType
import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import android.graphics.Bitmap
import org.json.JSONObject
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.FloatBuffer
import kotlin.math.max
import kotlin.math.min
import kotlin.math.roundToInt

/**
 * Upscales a Bitmap with an edgesr artifact: an ONNX Runtime `.ort` (or `.onnx`) file or an ncnn
 * `.param` + `.bin` pair, plus the sidecar JSON that `edgesr export` writes beside it.
 *
 * Everything model-specific comes from the sidecar (see export/README.md): scale, value range and dtype
 * of the input/output, tensor or blob names, `halo`, `alignment`, `min_size`, and the tile size
 * (`shape_profile.opt` minus two halos, kept within `shape_profile.max` for programs with an upper bound).
 * Tiles are cut from the image with `halo` pixels of real context on each side (clipped at the image
 * border, as edgesr's own tiler does), run one at a time, and only their cores are kept.
 */
class Upscaler(sidecarFile: File, threads: Int = 2, useVulkan: Boolean = false) : AutoCloseable {

    val scale: Int
    val halo: Int
    val alignment: Int
    val minSize: Int
    val tile: Int
    val format: String
    private val inputRange: Float
    private val outputRange: Float
    private val engine: Engine

    init {
        val side = JSONObject(sidecarFile.readText())
        val version = side.optString("schema_version", "")
        require(version.substringBefore('.') == "1") { "sidecar schema_version '$version' is not 1.x" }
        val artifact = side.getJSONObject("artifact")
        format = artifact.getString("format")
        scale = side.getInt("scale")
        halo = side.optInt("halo", 16)
        alignment = max(1, side.optInt("alignment", 1))
        minSize = max(1, side.optInt("min_size", 1))
        val input = side.getJSONArray("inputs").getJSONObject(0)
        val output = side.getJSONArray("outputs").getJSONObject(0)
        inputRange = input.getJSONArray("value_range").getDouble(1).toFloat()
        outputRange = output.getJSONArray("value_range").getDouble(1).toFloat()
        val profile = side.getJSONObject("shape_profile")
        val opt = profile.getJSONArray("opt")
        val maxShape = profile.getJSONArray("max")
        // the tile's core: the recommended input size minus the context on both sides, aligned
        var core = min(opt.getInt(2), opt.getInt(3)) - 2 * halo
        core = min(core, min(maxShape.getInt(2), maxShape.getInt(3)) - 2 * halo)
        core -= core % alignment
        tile = max(core, max(minSize, alignment))
        val dir = sidecarFile.parentFile
        val modelFile = File(dir, artifact.getString("file"))
        engine = when (format) {
            "ort", "onnx", "ort-int8", "onnx-int8" -> OrtEngine(modelFile, input, output, threads)
            "ncnn" -> NcnnEngine(modelFile, side.getJSONObject("ncnn"), dir, threads, useVulkan)
            else -> throw IllegalArgumentException(
                "artifact format '$format' is not supported here (use an .ort or ncnn export)")
        }
    }

    /** Upscale `src` (any size); `progress(done, total)` is called after each tile. */
    fun upscale(src: Bitmap, progress: ((Int, Int) -> Unit)? = null): Bitmap {
        val w = src.width
        val h = src.height
        val pixels = IntArray(w * h)
        src.getPixels(pixels, 0, w, 0, 0, w, h)
        val rgb = FloatArray(3 * w * h)  // CHW in the model's input range
        val k = inputRange / 255f
        for (i in 0 until w * h) {
            val p = pixels[i]
            rgb[i] = ((p shr 16) and 0xFF) * k
            rgb[w * h + i] = ((p shr 8) and 0xFF) * k
            rgb[2 * w * h + i] = (p and 0xFF) * k
        }
        val ow = w * scale
        val oh = h * scale
        val out = IntArray(ow * oh)
        val ys = spans(h)
        val xs = spans(w)
        var done = 0
        for ((y0, y1) in ys) for ((x0, x1) in xs) {
            // the window: the core plus `halo` of real context, clipped at the image border
            val wy0 = max(0, y0 - halo)
            val wy1 = min(h, y1 + halo)
            val wx0 = max(0, x0 - halo)
            val wx1 = min(w, x1 + halo)
            val wh = wy1 - wy0
            val ww = wx1 - wx0
            // mirror-pad to the model's minimum size and alignment (bottom/right), then crop the output back
            val th = roundUp(max(wh, minSize), alignment)
            val tw = roundUp(max(ww, minSize), alignment)
            val window = FloatArray(3 * th * tw)
            for (c in 0 until 3) for (ty in 0 until th) for (tx in 0 until tw) {
                val sy = wy0 + mirror(ty, wh)
                val sx = wx0 + mirror(tx, ww)
                window[(c * th + ty) * tw + tx] = rgb[(c * h + sy) * w + sx]
            }
            val sr = engine.run(window, th, tw)
            val sh = th * scale
            val sw = tw * scale
            check(sr.size == 3 * sh * sw) { "the model returned ${sr.size} values for a ${th}x$tw tile, not x$scale" }
            val kOut = 255f / outputRange
            for (y in y0 * scale until y1 * scale) for (x in x0 * scale until x1 * scale) {
                val ty = y - wy0 * scale
                val tx = x - wx0 * scale
                val r = clamp8(sr[ty * sw + tx] * kOut)
                val g = clamp8(sr[(sh + ty) * sw + tx] * kOut)
                val b = clamp8(sr[(2 * sh + ty) * sw + tx] * kOut)
                out[y * ow + x] = (0xFF shl 24) or (r shl 16) or (g shl 8) or b
            }
            progress?.invoke(++done, ys.size * xs.size)
        }
        return Bitmap.createBitmap(out, ow, oh, Bitmap.Config.ARGB_8888)
    }

    override fun close() = engine.close()

    /** Equal-sized cores of at most `tile` pixels covering [0, length). */
    private fun spans(length: Int): List<Pair<Int, Int>> {
        val n = max(1, (length + tile - 1) / tile)
        val step = (length + n - 1) / n
        return (0 until n).map { i -> Pair(i * step, min(length, (i + 1) * step)) }.filter { it.first < it.second }
    }

    private fun roundUp(v: Int, a: Int) = (v + a - 1) / a * a

    /** Index `i` of a padded axis of real length `n`, mirrored at the end (reflect, then repeat for tiny n). */
    private fun mirror(i: Int, n: Int): Int {
        if (n == 1) return 0
        var j = i
        val period = 2 * n - 2
        j %= period
        return if (j < n) j else period - j
    }

    private fun clamp8(v: Float): Int = min(255, max(0, v.roundToInt()))

    private interface Engine : AutoCloseable {
        /** float32 CHW tile (3 x h x w, model input range) -> float32 CHW output (3 x h*scale x w*scale). */
        fun run(chw: FloatArray, h: Int, w: Int): FloatArray
    }

    /** ONNX Runtime (onnxruntime-android): `.ort` files from `edgesr export --format ort`, or `.onnx`. */
    private class OrtEngine(model: File, input: JSONObject, output: JSONObject, threads: Int) : Engine {
        private val env = OrtEnvironment.getEnvironment()
        private val session = env.createSession(model.absolutePath, OrtSession.SessionOptions().apply {
            setIntraOpNumThreads(threads)
        })
        private val inputName = input.getString("name")
        private val uint8In = input.getString("dtype") == "uint8"
        private val uint8Out = output.getString("dtype") == "uint8"

        init {
            require(input.getString("dtype") != "float16") { "float16 I/O (--fp16-io) is not handled here" }
        }

        override fun run(chw: FloatArray, h: Int, w: Int): FloatArray {
            val shape = longArrayOf(1, 3, h.toLong(), w.toLong())
            val tensor = if (uint8In) {
                val bytes = ByteBuffer.allocateDirect(chw.size).order(ByteOrder.nativeOrder())
                chw.forEach { bytes.put(min(255, max(0, it.roundToInt())).toByte()) }
                bytes.rewind()
                OnnxTensor.createTensor(env, bytes, shape, OnnxJavaType.UINT8)
            } else {
                OnnxTensor.createTensor(env, FloatBuffer.wrap(chw), shape)
            }
            tensor.use {
                session.run(mapOf(inputName to it)).use { result ->
                    val out = result.get(0) as OnnxTensor
                    return if (uint8Out) {
                        val b = out.byteBuffer
                        FloatArray(b.remaining()) { (b.get().toInt() and 0xFF).toFloat() }
                    } else {
                        val f = out.floatBuffer
                        FloatArray(f.remaining()).also { f.get(it) }
                    }
                }
            }
        }

        override fun close() = session.close()
    }

    /** ncnn through the JNI bridge in src/main/cpp (built when gradle.properties sets ncnn.dir). */
    private class NcnnEngine(param: File, block: JSONObject, dir: File, threads: Int, vulkan: Boolean) : Engine {
        private val handle: Long

        init {
            check(NcnnBridge.available) { "this build has no ncnn: set ncnn.dir in gradle.properties and rebuild" }
            val bin = File(dir, block.getJSONObject("bin").getString("file"))
            val opt = block.getJSONObject("opt")
            handle = NcnnBridge.load(param.absolutePath, bin.absolutePath, block.getString("input_blob"),
                block.getString("output_blob"), threads, opt.optBoolean("use_fp16_storage", false),
                opt.optBoolean("use_fp16_arithmetic", false), vulkan)
            check(handle != 0L) { "ncnn cannot load ${param.name} / ${bin.name}" }
        }

        override fun run(chw: FloatArray, h: Int, w: Int): FloatArray {
            val res = NcnnBridge.run(handle, chw, h, w) ?: error("ncnn failed on a ${h}x$w tile")
            return res.copyOf(res.size - 2)  // the last two values are the output's H and W
        }

        override fun close() = NcnnBridge.free(handle)
    }
}

/** The JNI functions of libedgesr_ncnn.so (src/main/cpp/ncnn_jni.cpp). */
object NcnnBridge {
    val available: Boolean = try {
        System.loadLibrary("edgesr_ncnn")
        true
    } catch (e: UnsatisfiedLinkError) {
        false
    }

    @JvmStatic external fun load(param: String, bin: String, inputBlob: String, outputBlob: String, threads: Int,
                                 fp16Storage: Boolean, fp16Arithmetic: Boolean, vulkan: Boolean): Long

    @JvmStatic external fun run(handle: Long, chw: FloatArray, height: Int, width: Int): FloatArray?

    @JvmStatic external fun free(handle: Long)
}
