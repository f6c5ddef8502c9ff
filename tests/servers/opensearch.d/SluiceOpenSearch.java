// One-node OpenSearch for sluice's end-to-end tests (tests/servers/opensearch).
//
// Starts org.opensearch.node.Node directly instead of going through
// org.opensearch.bootstrap.OpenSearch: that skips the bootstrap (root check,
// security manager, bootstrap checks such as vm.max_map_count) which a test
// server run as root on a small box cannot pass. The HTTP layer comes from
// the transport-netty4 module, passed as a classpath plugin.
//
// Usage: java ... SluiceOpenSearch <home-dir> [key=value ...]
//   <home-dir> must contain config/log4j2.properties; the remaining arguments
//   are node settings (path.data, http.port, ...).
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public final class SluiceOpenSearch {
    static final class TestNode extends Node {
        TestNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: SluiceOpenSearch <home-dir> [key=value ...]");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        Settings.Builder b = Settings.builder()
            .put("path.home", home.toString())
            .put("cluster.name", "sluice-test")
            .put("node.name", "sluice-test-1")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true);
        for (int i = 1; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("bad setting (want key=value): " + args[i]);
                System.exit(2);
            }
            b.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        final Node node;
        try {
            Environment env = InternalSettingsPreparer.prepareEnvironment(
                b.build(), Map.of(), home.resolve("config"), () -> "sluice-test-1");
            LogConfigurator.registerErrorListener();
            LogConfigurator.setNodeName("sluice-test-1");
            LogConfigurator.configure(env);
            node = new TestNode(env, List.of(Netty4Plugin.class));
        } catch (Throwable t) {
            // exit even if the failed node left non-daemon threads behind
            t.printStackTrace();
            System.exit(1);
            return;
        }
        final CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Throwable e) {
                e.printStackTrace();
            } finally {
                done.countDown();
            }
        }, "sluice-shutdown"));
        try {
            node.start();
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }
        System.out.println("SLUICE-OPENSEARCH-STARTED");
        System.out.flush();
        done.await();
    }
}
