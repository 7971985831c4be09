/*
 * Driver probe for pgjdbc (e2e/drivers.e2e.ts), run with the source launcher:
 *
 *   java -cp postgresql.jar Probe.java JDBC-URL
 *
 * Connects with the JDBC URL exactly as given, runs SELECT 1, and prints one
 * JSON line saying whether the session is encrypted (pg_stat_ssl). Exits 1,
 * with the driver's error (and its causes) on stderr, when it cannot connect.
 */
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

public class Probe {
  public static void main(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: java -cp postgresql.jar Probe.java JDBC-URL");
      System.exit(2);
    }
    try (Connection connection = DriverManager.getConnection(args[0]);
        Statement statement = connection.createStatement()) {
      int one;
      boolean ssl;
      try (ResultSet rows = statement.executeQuery("SELECT 1")) {
        rows.next();
        one = rows.getInt(1);
      }
      try (ResultSet rows = statement.executeQuery("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) {
        rows.next();
        ssl = rows.getBoolean(1);
      }
      String version = connection.getMetaData().getDriverVersion();
      System.out.println("{\"driver\":\"pgjdbc " + version + "\",\"one\":" + one + ",\"ssl\":" + ssl + "}");
    } catch (SQLException error) {
      StringBuilder message = new StringBuilder(error.toString());
      for (Throwable cause = error.getCause(); cause != null; cause = cause.getCause()) {
        message.append("\n  caused by: ").append(cause);
      }
      System.err.println(message);
      System.exit(1);
    }
  }
}
